"""Kuwa: chat with many LLMs at once; serve them from your own GPUs."""

__version__ = "0.1.0"
