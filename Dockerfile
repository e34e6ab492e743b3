# syntax=docker/dockerfile:1
#
# STL-SNN Serve images (docker-compose.yml builds them):
#   --target export   PyTorch (CPU wheel) + ONNX: the batch export job, checkpoints -> model repository
#   --target serve    the API with the ONNX backend and no PyTorch, on the runtime SERVE_RUNTIME names:
#                     runtime-gpu (default): CUDA 13 + cuDNN 9, onnxruntime-gpu, requirements/serve-gpu.txt
#                     runtime-cpu: ONNX Runtime's CPU provider, requirements/serve.txt
# Every Python package comes from the pinned requirements/*.txt files the test suite installs.
# No build secrets: nothing here needs a credential.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
ARG SERVE_RUNTIME=runtime-gpu


# Python, a non-root user and the folder the model repository lives in (a named volume in compose
# takes this folder's owner when it is first created, so the export job can write into it). The code
# is root-owned and read-only to that user, so numba's compiled-function cache goes to /tmp.
FROM ${PYTHON_IMAGE} AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 stlsnn \
    && useradd --system --uid 10001 --gid stlsnn --home-dir /app --shell /usr/sbin/nologin stlsnn \
    && mkdir -p /srv/model_repository \
    && chown stlsnn:stlsnn /srv/model_repository
WORKDIR /app


# The batch export job. torch==2.13.0 in export.txt resolves to the CPU build (2.13.0+cpu) from
# PyTorch's CPU index: a local version sorts above the plain one, and the CPU wheel is far smaller.
FROM python-base AS export
COPY requirements/serve.txt requirements/export.txt requirements/
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -r requirements/export.txt
COPY pyproject.toml README.md ./
COPY events events
COPY models models
COPY export export
# Checkpoints saved 0600 in the build context would be unreadable to the image user.
RUN pip install --no-cache-dir --no-deps . \
    && chmod -R a+rX /app
USER 10001:10001
ENTRYPOINT ["python", "-m", "export"]
CMD ["/app/models/checkpoints", "--out", "/srv/model_repository"]


# Serving runtime without a GPU: ONNX Runtime's CPU provider, the serve requirements only.
FROM python-base AS runtime-cpu
COPY requirements/serve.txt requirements/
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir -r requirements/serve.txt
ENV STLSNN_DEVICE=cpu


# Serving runtime on the GPU: CUDA 13 runtime + cuDNN 9 from NVIDIA's image (what onnxruntime-gpu
# >= 1.27 links against) and Ubuntu 24.04's Python 3.12. The host needs an NVIDIA driver of the
# R580 branch or newer and the NVIDIA Container Toolkit (README, Deployment).
FROM ${CUDA_IMAGE} AS runtime-gpu
ARG DEBIAN_FRONTEND=noninteractive
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    PATH=/opt/venv/bin:$PATH
# The distribution's packages follow the base image tag; pinning exact Debian revisions would
# break the build at the archive's next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 stlsnn \
    && useradd --system --uid 10001 --gid stlsnn --home-dir /app --shell /usr/sbin/nologin stlsnn \
    && mkdir -p /srv/model_repository \
    && chown stlsnn:stlsnn /srv/model_repository
WORKDIR /app
COPY requirements/serve-gpu.txt requirements/
RUN python3 -m venv /opt/venv \
    && pip install --no-cache-dir -r requirements/serve-gpu.txt
ENV STLSNN_DEVICE=cuda


# The API: torch-free code only (the service, the decoders, the manifest schema) on either runtime.
# Python is PID 1 in exec form, so SIGTERM reaches the server, which drains and exits.
FROM ${SERVE_RUNTIME} AS serve
WORKDIR /app
COPY pyproject.toml README.md ./
COPY events events
COPY export/__init__.py export/manifest.py export/
COPY models/__init__.py models/energy.py models/
COPY models/energy_profiles models/energy_profiles
COPY service service
RUN pip install --no-cache-dir --no-deps .
USER 10001:10001
ENV STLSNN_HOST=0.0.0.0 \
    STLSNN_PORT=8000 \
    STLSNN_MODEL_REPOSITORY=/srv/model_repository \
    STLSNN_BACKEND=onnx \
    STLSNN_WORKERS=0
# STLSNN_WORKERS=0: one server process per core on the CPU image, one on the GPU image (STLSNN_DEVICE=cuda)
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('STLSNN_PORT', '8000'), timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "service"]


# Ray Serve nodes (deploy/k8s/rayservice.yaml): the serve image plus Ray, on the same runtime. Only
# requirements/ray.txt's own pin is installed: its -r line would swap the GPU runtime's onnxruntime-gpu for
# the CPU build, and the runtime already holds those pins. KubeRay starts `ray start` in the container
# itself; the plain `serve` target above never holds Ray. Build with --target ray.
FROM serve AS ray
USER 0:0
COPY requirements/ray.txt requirements/
RUN grep -v '^-r ' requirements/ray.txt > /tmp/ray-only.txt \
    && pip install --no-cache-dir -r /tmp/ray-only.txt \
    && rm /tmp/ray-only.txt
USER 10001:10001
ENTRYPOINT []
CMD ["ray", "--help"]


# The last stage is what a plain `docker build .` builds: the serve image, not Ray's.
FROM serve AS default
