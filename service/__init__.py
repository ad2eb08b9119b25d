"""fncall: OpenAI-compatible function calling on Triton Inference Server + ONNX Runtime."""
