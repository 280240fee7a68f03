"""INT8 on OpenVINO: NNCF calibration on decoded frames, the parity gate, its cache key, its refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from framesift.engines import quantize
from framesift.engines.runtimes import available_runtimes
from framesift.errors import EngineError
from framesift.samples import write_clip
from tests.engines.clip_helpers import TINY, cosine_rows, tiny_model

pytestmark = pytest.mark.skipif(
    available_runtimes()["openvino"].startswith("unavailable"), reason="openvino is not installed"
)
torch = pytest.importorskip("torch")
pytest.importorskip("nncf")


@pytest.fixture(scope="module")
def model() -> object:
    return tiny_model(seed=0)


def _clip(model: object, cache: Path, precision: str, **kw: object):  # type: ignore[no-untyped-def]
    from framesift.engines.models.clip import ClipEmbedder

    return ClipEmbedder(
        TINY,
        torch_model=model,
        runtime="openvino",
        device="cpu",
        precision=precision,
        cache_dir=str(cache),
        **kw,
    )


def test_calibration_sets_say_what_they_are(tmp_path: Path) -> None:
    gen = quantize.calibration_set(None, n=6)
    assert len(gen.frames) + len(gen.held_out) == 6 + quantize.GATE_FRAMES
    assert gen.source.startswith("generated") and "held-out" in gen.describe()
    assert gen.digest == quantize.calibration_set(None, n=6).digest  # generated: the same every time
    clip = write_clip(tmp_path / "c.mp4", segments=(12, 12), width=96, height=64).path
    dec = quantize.calibration_set(str(clip), n=8)
    assert dec.source == "c.mp4" and dec.frames[0].shape == (64, 96, 3)
    assert dec.digest != gen.digest
    with pytest.raises(Exception, match="not found"):
        quantize.calibration_set(str(tmp_path / "missing.mp4"))


def test_clip_int8_passes_its_gate_and_is_keyed_by_calibration(
    model: object, tmp_path: Path, frames_by_size: dict
) -> None:
    fp32 = _clip(model, tmp_path, "fp32")
    int8 = _clip(model, tmp_path, "int8")
    assert int8.plan.precision == "int8" and "generated" in str(int8.calibration)
    images = [f for fs in frames_by_size.values() for f in fs[:2]]
    assert cosine_rows(int8.embed_images(images), fp32.embed_images(images)).min() >= 0.98
    # the text tower stays fp32
    np.testing.assert_allclose(int8.embed_texts(["a cat"]), fp32.embed_texts(["a cat"]), atol=1e-5)

    def entries() -> set[str]:
        return {p.name for p in tmp_path.iterdir() if p.is_dir()}

    before = entries()
    other = _clip(model, tmp_path, "int8", calibration=images)  # another calibration set: another engine
    assert ", given (gate on" in str(other.calibration)
    assert len(entries() - before) == 1
    before = entries()
    again = _clip(model, tmp_path, "int8")  # same weights and calibration: loaded, not rebuilt
    assert entries() == before and again.artefacts["image.xml"] == int8.artefacts["image.xml"]
    for e in (fp32, int8, other, again):
        e.close()


def test_a_failed_gate_refuses_the_engine_in_one_line(
    model: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quantize, "CLIP_MIN_COSINE", 1.01)  # no engine can pass: the refusal path
    with pytest.raises(EngineError) as exc:
        _clip(model, tmp_path, "int8")
    msg = str(exc.value)
    assert "\n" not in msg and "INT8 engine refused: image embedding cosine min" in msg
    assert "calibration: " in msg and "use precision: fp32" in msg
    assert not [p for p in tmp_path.iterdir() if p.is_dir() and (p / "model.xml").exists()]


@pytest.mark.slow  # ViT-B-32 export + NNCF calibration: about a minute on 2 cores
def test_real_vit_b_32_int8_image_embeddings(tmp_path: Path, frames_by_size: dict) -> None:
    import open_clip

    from framesift.engines.models.clip import ClipEmbedder

    torch.manual_seed(0)
    net = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    images = [f for fs in frames_by_size.values() for f in fs[:2]]
    embs = {
        p: ClipEmbedder("ViT-B-32", torch_model=net, runtime="openvino", precision=p, cache_dir=str(tmp_path))
        for p in ("fp32", "int8")
    }
    assert cosine_rows(embs["int8"].embed_images(images), embs["fp32"].embed_images(images)).min() >= 0.98
    for e in embs.values():
        e.close()


def test_engine_cache_key_holds_calibration_and_isa() -> None:
    from framesift.engines.runtimes.openvino_runtime import ir_key

    a = ir_key("m", "w", device="cpu", precision="int8", calibration="c1")
    b = ir_key("m", "w", device="cpu", precision="int8", calibration="c2")
    c = ir_key("m", "w", device="cpu", precision="fp32")
    assert len({a.digest, b.digest, c.digest}) == 3
    assert a.export["isa"].startswith("isa:") and a.runtime == "openvino-ir" and a.runtime_version
