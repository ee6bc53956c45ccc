# syntax=docker/dockerfile:1
# The `topics` indexer: `topics serve` watching /inbox, state under /data.
#
#   docker build -t topics:0.1.0 .                          # CPU torch (default)
#   docker build -t topics:0.1.0-cu128 --build-arg CUDA=cu128 .   # CUDA torch wheels (GPU hosts)
#
# The CUDA wheels bring their own CUDA libraries; the host needs only the NVIDIA driver and the
# NVIDIA container toolkit. No model weights are baked in: mount a checkpoint (TOPICS_MODEL__CHECKPOINT)
# or let the hub cache fill /data/hf on first start. Pin the base image by digest in production:
#   docker buildx imagetools inspect python:3.11.13-slim-bookworm   (then PYTHON_IMAGE=...@sha256:...)

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# cpu, or a PyTorch CUDA wheel tag such as cu128 (see https://download.pytorch.org/whl/)
ARG CUDA=cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
# A compiler only for wheels that might build from source (hdbscan); it stays in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
WORKDIR /src
# torch first, from the index that matches CUDA; `pip install .` then finds it satisfied.
RUN pip install --index-url "https://download.pytorch.org/whl/${CUDA}" torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md ./
COPY indexer ./indexer
COPY topics ./topics
COPY cli ./cli
RUN pip install . && topics --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 topics \
 && useradd --system --uid 10001 --gid topics --home-dir /home/topics --create-home topics \
 && mkdir -p /data /inbox \
 && chown topics:topics /data /inbox
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TOPICS_DATA_DIR=/data \
    HF_HOME=/data/hf
USER topics
WORKDIR /home/topics
VOLUME ["/data"]
# Answers through the running service's control socket (embedded store) or from the server.
HEALTHCHECK --interval=30s --timeout=20s --start-period=120s --retries=3 \
    CMD ["topics", "status", "--json"]
ENTRYPOINT ["topics", "serve", "--watch", "/inbox"]
