#!/usr/bin/env bash
# The one GPU check (DESIGN.md section 13), at most 5 minutes on a machine with an NVIDIA GPU:
#   1. installs the carried wheels (bench/gpu_wheels.sh -> .whl/) into a temporary site folder;
#   2. runs the tests marked gpu (tests/test_gpu_paths.py);
#   3. bench.inference --device cuda: official-style eager, folded, TorchScript, TorchScript +
#      CUDA graphs, bf16 and fp16 TorchScript, batches 1..256, demo and dvsgesture presets;
#   4. bench.load against the server on CUDA (TorchScript backend; ONNX Runtime's CUDA provider
#      too where onnxruntime-gpu is importable), batching on and off, concurrency 1/8/32/128,
#      with the NVML energy per request the responses carry (measured_gpu_j);
#   5. writes its section files and its log to one folder ($OUT when set, else a temporary one),
#      for `python -m bench.report --merge DIR` to splice into BENCHMARKS.md.
# Each step has a time limit; on the GPU they add up to 300 s, and the optional ONNX Runtime
# CUDA load runs only if 60 s are left. --dry-run (or GPU_CHECK_DRY=1) runs the same steps on
# the CPU with small sizes and ten times the limits (a shared CPU machine): the wheels are only
# resolved for CPython 3.12 (not put on the path), and the section keys end in -cpu-dry-run.
#
#     bench/gpu_check.sh [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=${GPU_CHECK_DRY:-0}
[[ ${1:-} == --dry-run ]] && DRY=1
PYTHON=${PYTHON:-python3}
DEST=${OUT:-$(mktemp -d)}
mkdir -p "$DEST"
LOG=$DEST/gpu_check.log
SITE=$(mktemp -d)
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

say() { echo "[gpu_check $(date -u +%T)] $*" | tee -a "$LOG"; }
step() {  # step SECONDS NAME COMMAND...: run with a time limit, output to the log; a failure stops the check
    local limit=$1 name=$2
    shift 2
    say "$name: $*"
    if ! timeout $((limit * SCALE)) "$@" >>"$LOG" 2>&1; then
        say "$name FAILED (exit, or over its $((limit * SCALE)) s); the log's tail:"
        tail -n 40 "$LOG"
        exit 1
    fi
}

if [[ $DRY == 1 ]]; then
    DEVICE=cpu SUFFIX=-cpu-dry-run PARITY=4 SCALE=10 LABEL="CPU dry run of bench/gpu_check.sh, not a GPU figure"
    INFERENCE=(--models demo --batches 1,4 --rounds 2)
    LOAD=(--concurrency 1,4 --requests 8 --rounds 1 --soak 0)
    say "dry run: every step on the CPU, small sizes; no figure here is a GPU figure"
else
    DEVICE=cuda SUFFIX=-gpu PARITY=32 SCALE=1 LABEL="GPU run of bench/gpu_check.sh"
    # H200 SXM datasheet peaks: fp32 67 TFLOP/s (cuDNN may run fp32 convs as TF32, whose peak is higher), 4.8 TB/s
    INFERENCE=(--models demo,dvsgesture --batches 1,2,4,8,16,32,64,128,256 --rounds 15 --peaks 6.7e13,4.8e12)
    LOAD=(--concurrency 1,8,32,128 --requests 256 --rounds 2 --soak 0)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$LOG"
fi

WHEELS=(.whl/*.whl)
if [[ ! -e ${WHEELS[0]} ]]; then
    [[ $DRY == 1 ]] || { say "no wheels in .whl/: run bench/gpu_wheels.sh first"; exit 1; }
    say "wheels: none in .whl/ (bench/gpu_wheels.sh fetches them); install step skipped in the dry run"
elif [[ $DRY == 1 ]]; then
    step 20 "wheels (resolved for CPython 3.12, not used)" "$PYTHON" -m pip install -q --no-index --no-deps \
        --no-compile --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        --target "$SITE" "${WHEELS[@]}"
else
    step 20 "wheels" "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "${WHEELS[@]}"
    export PYTHONPATH=$SITE:$PYTHONPATH
fi

step 40 "export" "$PYTHON" -m export models/checkpoints --out "$SITE/repo" --parity-samples "$PARITY"
step 75 "tests marked gpu" "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu -rs tests/test_gpu_paths.py
step 105 "inference" "$PYTHON" -m bench.inference --device "$DEVICE" "${INFERENCE[@]}" --out "$DEST" --key-suffix="$SUFFIX" \
    --label="$LABEL"
step 60 "load, TorchScript" "$PYTHON" -m bench.load --backend torchscript --device "$DEVICE" "${LOAD[@]}" \
    --repository "$SITE/repo" --out "$DEST" --key="load-torchscript$SUFFIX" --label="TorchScript on $DEVICE, $LABEL"
if [[ $DRY != 1 ]] && ((SECONDS < 240)) && "$PYTHON" -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())"; then
    step 60 "load, ONNX Runtime CUDA" "$PYTHON" -m bench.load --backend onnx --device cuda "${LOAD[@]}" \
        --repository "$SITE/repo" --out "$DEST" --key="load-onnx$SUFFIX" --label="ONNX Runtime on cuda, $LABEL"
else
    say "load, ONNX Runtime CUDA: skipped (dry run, under 60 s left, or onnxruntime-gpu not importable)"
fi
say "done in ${SECONDS} s: $(ls "$DEST" | tr '\n' ' ')"
say "merge with: python -m bench.report --merge $DEST"
