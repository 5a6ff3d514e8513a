"""Helpers the tests and the benchmarks share: images, a server under gunicorn, known answers."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
