"""Where each configurable component type is implemented (imported lazily, so optional
dependencies are only needed by those who use them).

Sink classes expose ``from_config(cfg) -> Sink``; analyzer classes expose
``from_config(cfg, embedder) -> Analyzer``.
"""

from __future__ import annotations

import importlib
from typing import Any

from framesift.errors import ConfigError

SINKS: dict[str, str] = {
    "jsonl": "framesift.sinks.jsonl:JsonlSink",
    "csv": "framesift.sinks.csv:CsvSink",
    "frame_store": "framesift.sinks.frame_store:FrameStoreSink",
    "mqtt": "framesift.sinks.mqtt:MqttSink",
    "webhook": "framesift.sinks.webhook:WebhookSink",
    "video": "framesift.sinks.video:VideoSink",
    "detections": "framesift.sinks.detections:DetectionsSink",
}

ANALYZERS: dict[str, str] = {
    "scene_change": "framesift.analyzers.scene_change:SceneChangeAnalyzer",
    "collector": "framesift.analyzers.collector:Collector",
    "zero_shot": "framesift.analyzers.zero_shot:ZeroShotAnalyzer",
    "tracker": "framesift.analyzers.tracking:TrackingAnalyzer",
}


def resolve(kind: str, type_name: str, table: dict[str, str]) -> Any:
    """Import and return the class implementing ``type_name``; ConfigError if unknown/not installed."""
    target = table.get(type_name)
    if target is None:
        raise ConfigError(f"unknown {kind} type {type_name!r} (available: {', '.join(sorted(table))})")
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"{kind} {type_name!r} needs the Python package {exc.name!r}: "
            f"pip install 'framesift[{_EXTRAS.get(type_name, type_name)}]'"
        ) from None
    return getattr(module, attr)


_EXTRAS = {"mqtt": "mqtt", "webhook": "webhook"}
