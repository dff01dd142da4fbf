"""Shared test settings."""

from pathlib import Path

# Real benchmark data lives beside the repository (../shared/data); it is never copied into it.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
