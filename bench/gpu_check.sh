#!/usr/bin/env bash
# The GPU device check: everything in docs/gpu.md that only a GPU machine can run, in < 8 minutes.
#
#   bash bench/gpu_check.sh --prepare   # here, with network: cp312 wheels the GPU image lacks -> .whl/
#   bash bench/gpu_check.sh             # on the GPU machine (no network), with .whl/ carried along
#
# The GPU image (H100/H200, Python 3.12, torch 2.11 CUDA 13, torchvision, cupy-cuda13x, CPU
# onnxruntime, opencv headless, numpy, tqdm, httpx, prometheus-client) lacks PyAV, pydantic, PyYAML,
# open_clip, supervision, pytest, ultralytics, mobilesam: they come from .whl/ (git-ignored; at most
# 64 MiB with the working tree, so scipy, matplotlib and TensorRT are not carried: tests needing them
# skip and say so). Programs (.pt2, ONNX) are exported on the device by its own torch, into a fresh
# engine cache. Every step prints RESULT lines; a failing step does not stop the others; the exit
# status is the number of failed steps.
set -u -o pipefail
cd "$(dirname "$0")/.."
WHL=${WHL:-.whl}
PY=${PYTHON:-python3}
# name==version as tested here (py3 wheels or cp312 manylinux x86_64)
WHEELS=(
  av==18.1.0 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  PyYAML==6.0.4 pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 pytest-timeout==2.4.0 psutil==7.2.2
  open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.5 regex==2026.12.2 timm==1.0.31 safetensors==0.8.0
  huggingface_hub==2.4.0 filelock==4.3.2 fsspec==2026.9.0 supervision==0.31.2 defusedxml==0.7.1
  ultralytics==8.4.190 mobilesam-mirror==1.0.0
)

if [[ "${1:-}" == "--prepare" ]]; then
  mkdir -p "$WHL"
  for w in "${WHEELS[@]}"; do
    pip download --quiet --no-deps --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform any --only-binary :all: -d "$WHL" "$w" || echo "prepare: could not download $w"
  done
  du -sh "$WHL"
  size=$(du -sm "$WHL" | cut -f1)
  if (( size > 60 )); then echo "prepare: $WHL is ${size} MiB, over the 60 MiB that can travel"; exit 1; fi
  exit 0
fi

T0=$(date +%s)
FAILED=0
step() {  # step NAME SECONDS CMD...: run with a time cap, RESULT lines tagged with the device
  local name=$1 cap=$2; shift 2
  echo "=== $name (cap ${cap}s, at $(( $(date +%s) - T0 ))s)"
  if ! timeout "$cap" "$@" 2>&1 | sed -u "s/^RESULT /RESULT device=$GPU step=$name /"; then
    echo "RESULT device=$GPU step=$name status=failed"; FAILED=$((FAILED + 1))
  fi
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
GPU=$($PY -c "import torch; print(torch.cuda.get_device_name(0).replace(' ', '_'))" 2>/dev/null || echo none)
echo "RESULT device=$GPU torch=$($PY -c 'import torch; print(torch.__version__)')"

if compgen -G "$WHL/*.whl" >/dev/null; then
  $PY -m pip install --quiet --no-index --no-deps "$WHL"/*.whl 2>&1 | tail -3
fi
$PY -m pip install --quiet --no-index --no-deps --no-build-isolation -e . 2>&1 | tail -2 || true
export PYTHONPATH=$PWD FRAMESIFT_CACHE=$(mktemp -d)
GPU=$GPU $PY - <<'PY'
import importlib, os
for m in ("av", "pydantic", "yaml", "open_clip", "supervision", "ultralytics", "mobile_sam", "pytest", "tensorrt", "PyNvVideoCodec"):
    try:
        mod = importlib.import_module(m)
        print(f"have {m} {getattr(mod, '__version__', '')}")
    except Exception as e:
        print(f"lack {m}: {type(e).__name__}: {str(e)[:80]}")
from framesift.gpu import probe_gpu
from framesift.engines.runtimes import available_runtimes
g = probe_gpu()
print(g)
for k, v in available_runtimes().items():
    print(f"runtime {k}: {v}")
import av
print(f"RESULT device={os.environ['GPU']} step=probe pyav={av.__version__} pyav_cuda={g.pyav_cuda} nvcodec={g.nvcodec} "
      f"ort_cuda={not available_runtimes()['onnxruntime-cuda'].startswith('unavailable')} "
      f"tensorrt={not available_runtimes()['tensorrt'].startswith('unavailable')}")
PY

# 1. GPU tests: value checks (graphs, preprocessing, NVDEC parity, CUDA frames into detectors)
step pytest-gpu 150 $PY -m pytest -q -m gpu -p no:cacheprovider tests/gpu --timeout 120
# 2. CLIP ViT-B/32: engine-only torch fp16 + CUDA graphs on inputs already on the GPU, and end to end
step clip 80 $PY bench/clip_throughput.py --device cuda --batches 256,512,1024 --iters 10
# 3. YOLO-World S @640 and MobileSAM on the GPU
step detect 80 $PY bench/detect.py --device cuda --frames 128 --batch 64 --repeat 3
# 4. 1080p30 H.264 streams on NVDEC with CLIP scene change, run length capped
step streams 170 $PY bench/gpu_streams.py --seconds 4 --counts 16,64,100,128,160

echo "RESULT gpu_check_seconds=$(( $(date +%s) - T0 )) failed_steps=$FAILED"
exit "$FAILED"
