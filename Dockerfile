# fncall on the NGC Triton Inference Server image (Triton 2.51 = 24.10; python backend + CUDA).
#   docker build -t fncall .
#   docker run --gpus all -p 8000:8000 -p 50051:50051 fncall
# The default model (Qwen2.5-Coder-0.5B-Instruct, fp16 for the GPU) is built in a first stage;
# the image keeps only the built repository and what serving uses (no GGUF wheels, no joined
# GGUF, no test tools). To serve your own model, mount a built repository at /models (see
# README, "Deployment").
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3

# Stage 1: build the model repository (CPU-only work: GGUF -> ONNX).
FROM ${TRITON_IMAGE} AS model
ARG MODEL=qwen2.5-coder-0.5b-instruct
ARG PRECISION=fp16
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/fncall
COPY pyproject.toml README.md ./
COPY service ./service
COPY model_repository ./model_repository
RUN python3 -m pip install --no-cache-dir -e '.[cpu,models]' \
    && fncall build-model "${MODEL}" --repository /models --name llm --precision "${PRECISION}"

# Stage 2: the service. FNCALL_BUILD=0: a repository mounted without the model is an error,
# not a build attempt (the image has no model wheels). onnxruntime-gpu 1.27 and later are built
# for CUDA 13; the 24.10 image has CUDA 12.6 and cuDNN 9, which 1.20-1.26 use.
FROM ${TRITON_IMAGE}
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    FNCALL_REPOSITORY=/models \
    FNCALL_BUILD=0 \
    FNCALL_HOST=0.0.0.0 \
    FNCALL_TRITONSERVER=/opt/tritonserver/bin/tritonserver

WORKDIR /opt/fncall
COPY pyproject.toml README.md ./
COPY service ./service
COPY model_repository ./model_repository
RUN python3 -m pip install --no-cache-dir -e '.[gpu]' 'onnxruntime-gpu>=1.20,<1.27'
COPY --from=model --chown=1000:1000 /models /models

# triton-server (uid 1000) is the NGC image's unprivileged user.
USER 1000:1000
EXPOSE 8000 50051
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4).status != 200)"]
# The API supervises Triton (/opt/tritonserver/bin/tritonserver) in the same container.
ENTRYPOINT ["fncall", "serve"]
