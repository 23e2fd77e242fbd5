"""Where the project and its (DVC-pulled, git-ignored) LFW copy are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LFW = ROOT / "data" / "lfw"
