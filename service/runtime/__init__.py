"""Code that runs inside Triton's Python backend: ONNX decoder, scheduler, sampling.

Nothing here imports ``triton_python_backend_utils``; only ``model_repository/llm/1/model.py`` does.
"""
