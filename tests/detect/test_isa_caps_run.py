"""A real engine under the AVX2 caps: the plan falls back to fp32 instead of oneDNN refusing bf16.

On a CPU with native bf16 and ``ONEDNN_MAX_CPU_ISA=AVX2``, a bf16 YOLO-World program fails in oneDNN
("mkldnn_convolution: bf16 path needs the cpu support avx_ne_convert or avx512bw..."); the caps are
read when oneDNN starts, so the engine runs in a child process that has them from its start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from framesift.engines.plan import cpu_bf16_kind
from tests.engines.test_isa_caps import AVX2_CAPS

pytest.importorskip("ultralytics")

CHILD = """
import json, sys, tempfile
import numpy as np, torch
from framesift.engines.cache import EngineCache
from framesift.engines.models.yolo_world import YoloWorld, build_reference
torch.manual_seed(0)
det = YoloWorld(build_reference("s", 2), imgsz=64, runtime="torch", device="cpu",
                text_encoder=lambda t: np.eye(len(t), 512, dtype=np.float32),
                cache=EngineCache(sys.argv[1]))
out = det.detect([np.zeros((48, 64, 3), np.uint8)], prompts=["a", "b"])
print(json.dumps({"precision": det.plan.precision, "reason": det.plan.reason, "frames": len(out)}))
"""


def test_torch_engine_under_avx2_caps_runs_fp32(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, **AVX2_CAPS}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["precision"] == "fp32" and got["frames"] == 1
    if cpu_bf16_kind() is not None:  # this CPU would have run bf16 without the caps
        assert "no bf16: ONEDNN_MAX_CPU_ISA=AVX2" in got["reason"]
