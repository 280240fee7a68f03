"""The data flow every command runs: sources → ring buffers → stage → analyzers → sinks."""

from framesift.pipeline.pipeline import Pipeline

__all__ = ["Pipeline"]
