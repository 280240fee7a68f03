"""Fixtures for the capture-layer tests."""

from __future__ import annotations

from tests.rtsp_server import rtsp_server  # noqa: F401  (fixture)
