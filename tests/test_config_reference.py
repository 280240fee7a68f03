"""docs/configuration.md's reference section is what the config models say (no drift)."""

from __future__ import annotations

from pathlib import Path

from framesift.config.reference import render

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_reference_is_up_to_date() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert render(text) == text, "run: python -m framesift.config.reference docs/configuration.md"


def test_reference_lists_every_component_type() -> None:
    text = DOC.read_text(encoding="utf-8")
    for tag in ("file", "rtsp", "http", "device", "images", "jsonl", "frame_store", "mqtt", "webhook"):
        assert f"`type: {tag}`" in text
    for tag in ("scene_change", "collector"):
        assert f"Analyzer `type: {tag}`" in text
