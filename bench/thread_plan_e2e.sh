#!/bin/bash
# The thread plan end to end: `framesift detect` (64 frames, YOLO-World S random weights) and
# `framesift collect` (pixel) on vtest.avi, this checkout against a baseline checkout, alternating.
#   bench/thread_plan_e2e.sh BASELINE_CHECKOUT [ROUNDS]      (set the ISA caps in the environment to emulate AVX2)
# Prints one line per round and side: detect frames/s (the command's own count), collect frames/s
# (795 frames ÷ wall time, start-up included).
set -euo pipefail
BASE=$(cd "$1" && pwd); HERE=$(cd "$(dirname "$0")/.." && pwd); ROUNDS=${2:-2}
V=/usr/share/doc/opencv-doc/examples/data/vtest.avi
PY=${PYTHON:-python}
OUT=$(mktemp -d)
for r in $(seq "$ROUNDS"); do
  for side in before after; do
    if [ $side = before ]; then P=$BASE; else P=$HERE; fi
    d=$(cd "$P" && PYTHONPATH=$P $PY -m framesift detect $V --prompt person --clip-pretrained none \
        --max-frames 64 --no-video --no-progress -o "$OUT/d_$side" 2>&1 | grep -o "([0-9.]* fps)")
    t0=$(date +%s.%N)
    (cd "$P" && PYTHONPATH=$P $PY -m framesift collect $V -o "$OUT/c_$side" --no-progress >/dev/null 2>&1)
    t=$(python3 -c "import time; print(round(795 / (time.time() - $t0), 1))")
    echo "round $r $side detect $d collect_fps $t"
    rm -rf "$OUT/c_$side"
  done
done
rm -rf "$OUT"
