#!/usr/bin/env bash
# Download, into the git-ignored folder .whl/ (or $1), the wheels that the lent GPU machine's
# image lacks for the server and the benchmarks: CPython 3.12, manylinux x86_64, no
# dependencies resolved (--no-deps), so every needed dependency is named here.
#
# What the image already holds (device tool KINDS.md: torch with CUDA, numpy, numba,
# onnx, onnxruntime for the CPU, httpx, anyio, h11, click, uvloop, pyyaml, annotated-doc,
# prometheus-client, nvidia-ml-py, safetensors, pytest) is not carried: two versions of one
# package stop the install there. onnxruntime-gpu is not carried either (its 1.31.1 wheel is 244 MiB, over
# the device tool's 64 MiB carry limit), so the ONNX Runtime CUDA provider is skipped there.
#
# Versions are requirements/serve.txt's pins; the rest are what those pins resolve to in the
# dev venv (typing-extensions: pydantic needs a newer one than an image may hold), and nir is
# requirements/dev.txt's pin (bench.inference exports NIR too).
# tests/test_gpu_check.py checks the pins agree with requirements/serve.txt.
#
#     bench/gpu_wheels.sh [folder]      (--list prints the pins only)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

WHEELS=(
    fastapi==0.165.0
    opentelemetry-api==1.45.2
    starlette==1.10.0
    uvicorn==0.54.0
    httptools==0.9.0
    python-multipart==0.0.34
    pydantic==2.14.4
    pydantic-core==2.50.5
    pydantic-settings==2.16.3
    python-dotenv==1.2.4
    annotated-types==0.8.0
    typing-inspection==0.4.5
    typing-extensions==4.16.0
    lz4==4.4.5
    zstandard==0.25.0
    orjson==3.13.0
    nir==1.0.8
)

if [[ ${1:-} == --list ]]; then
    printf '%s\n' "${WHEELS[@]}"
    exit 0
fi
DEST=${1:-.whl}

mkdir -p "$DEST"
for pin in "${WHEELS[@]}"; do
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "$pin"
done
count=$(find "$DEST" -type f -name '*.whl' | wc -l)
bytes=$(find "$DEST" -type f -name '*.whl' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
echo "$count wheels in $DEST: $((bytes / 1024)) KiB (the device tool carries at most 64 MiB with the tree)"
