"""The browser demo: a webcam page that spells words with the model, and its proxy to TorchServe."""

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
