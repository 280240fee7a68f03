"""GPU tests: ``@pytest.mark.gpu`` tests are skipped, with the reason, where CUDA cannot run."""

from __future__ import annotations

import pytest

from framesift.gpu import probe_gpu


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    info = probe_gpu()
    if info.cuda:
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA device: {info.reason}")
    for item in gpu_items:
        item.add_marker(skip)
