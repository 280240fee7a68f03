"""Detector plugins: one module per detector type, holding its config model and implementation."""
