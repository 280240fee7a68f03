"""Detector and segmenter plugins: discovery finds their config models, a config dict validates
into them, and ``build_detector`` / ``build_segmenter`` build what they name."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pytest
from pydantic import Field, TypeAdapter, ValidationError

from framesift.config import plugins
from framesift.config.base import DetectorSpec, SegmenterSpec
from framesift.engines.base import Detector, ImageLike, Segmenter
from framesift.engines.detectors import build_detector
from framesift.engines.detectors.yolo_world import YoloWorldConfig
from framesift.engines.segmenters import build_segmenter
from framesift.engines.segmenters.sam import SamConfig


def test_discovery_finds_yolo_world_and_sam() -> None:
    assert "yolo_world" in plugins.types("detector")
    assert "sam" in plugins.types("segmenter")
    assert plugins.spec_for("detector", "yolo_world") is YoloWorldConfig
    assert plugins.spec_for("segmenter", "sam") is SamConfig


def test_config_dicts_validate_into_the_specs() -> None:
    det = TypeAdapter(plugins.union("detector")).validate_python(
        {"type": "yolo_world", "prompts": ["forklift"], "imgsz": 320, "clip_pretrained": None}
    )
    assert isinstance(det, YoloWorldConfig)
    assert (det.model, det.imgsz, det.runtime, det.precision, det.clip_model) == (
        "s",
        320,
        "auto",
        "auto",
        "ViT-B-32",
    )
    assert det.clip_pretrained is None
    seg = TypeAdapter(plugins.union("segmenter")).validate_python({"type": "sam", "max_boxes": 8})
    assert isinstance(seg, SamConfig) and (seg.model, seg.max_boxes, seg.device) == ("vit_t", 8, "auto")
    for bad in (
        {"type": "yolo_world", "prompts": []},
        {"type": "yolo_world", "prompts": ["ok", " "]},
        {"type": "yolo_world", "prompts": ["a"], "imgsz": 100},
        {"type": "yolo_world", "prompts": ["a"], "runtime": "tensorrt"},
        {"type": "yolo_world", "prompts": ["a"], "colour": "red"},
    ):
        with pytest.raises(ValidationError):
            TypeAdapter(plugins.union("detector")).validate_python(bad)
    with pytest.raises(ValidationError):
        SamConfig(max_boxes=0)


def test_the_specs_name_the_model_classes() -> None:
    pytest.importorskip("torch")
    from framesift.engines.models.sam import SamSegmenter
    from framesift.engines.models.yolo_world import YoloWorld

    assert YoloWorldConfig.implementation_target() is YoloWorld
    assert SamConfig.implementation_target() is SamSegmenter


class _Boxes(Detector):
    def __init__(self, prompts: Sequence[str]) -> None:
        self.prompts = list(prompts)

    @classmethod
    def from_config(cls, cfg: FakeDetectorConfig, **options: Any) -> _Boxes:
        det = cls(cfg.prompts)
        det.options = options  # type: ignore[attr-defined]
        return det

    def detect(self, images: Sequence[ImageLike], prompts: Sequence[str] | None = None) -> list[Any]:
        return [None for _ in images]


class _Masks(Segmenter):
    def segment(self, image: ImageLike, boxes: np.ndarray) -> np.ndarray:
        return np.zeros((len(boxes), 1, 1), bool)


def _masks(cfg: FakeSegmenterConfig) -> Segmenter:
    return _Masks()


class FakeDetectorConfig(DetectorSpec):
    implementation: ClassVar[str] = "tests.engines.test_plugins:_Boxes"
    type: Literal["fake_boxes"] = "fake_boxes"
    prompts: list[str] = Field(default_factory=lambda: ["x"])


class FakeSegmenterConfig(SegmenterSpec):
    implementation: ClassVar[str] = "tests.engines.test_plugins:_masks"  # a function works too
    type: Literal["fake_masks"] = "fake_masks"


class NotADetectorConfig(DetectorSpec):
    implementation: ClassVar[str] = "tests.engines.test_plugins:_masks"
    type: Literal["not_a_detector"] = "not_a_detector"


def test_build_detector_and_segmenter_from_specs() -> None:
    det = build_detector(FakeDetectorConfig(prompts=["cat"]), cache="c")
    assert isinstance(det, _Boxes) and det.prompts == ["cat"] and det.options == {"cache": "c"}  # type: ignore[attr-defined]
    assert isinstance(build_segmenter(FakeSegmenterConfig()), _Masks)
    with pytest.raises(TypeError, match="not a Detector"):
        build_detector(NotADetectorConfig())


def test_plugin_modules_import_no_heavy_packages() -> None:
    code = (
        "import sys\n"
        "from framesift.config import plugins\n"
        "assert plugins.types('detector') and plugins.types('segmenter')\n"
        "from framesift.engines import plan, export, shared\n"
        "heavy = sorted(m for m in ('torch', 'open_clip', 'onnxruntime', 'ultralytics') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout
