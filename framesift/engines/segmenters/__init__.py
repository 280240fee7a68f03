"""Segmenter plugins: one module per segmenter type, holding its config model and implementation."""
