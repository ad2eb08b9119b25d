"""Build a Triton model repository entry (ONNX model, tokenizer, chat template, model card)."""
