"""Shared test fixtures: where the golden fixture, the synthetic clips and the official demo clips live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
GOLDEN_DIR = FIXTURES / "golden"
GOLDEN_MODEL = GOLDEN_DIR / "model"
SYNTHETIC_DIR = FIXTURES / "synthetic"


def official_examples_dir() -> Path | None:
    """The official demo clips: ``$STCHAT_VIDEOS/official_examples`` or ../shared/videos/official_examples."""
    candidates = []
    if os.environ.get("STCHAT_VIDEOS"):
        candidates.append(Path(os.environ["STCHAT_VIDEOS"]) / "official_examples")
    candidates.append(REPO.parent / "shared" / "videos" / "official_examples")
    for c in candidates:
        if (c / "examples.json").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def golden_model_dir() -> Path:
    return GOLDEN_MODEL


@pytest.fixture(scope="session")
def synthetic_dir() -> Path:
    return SYNTHETIC_DIR


@pytest.fixture(scope="session")
def official_dir() -> Path:
    d = official_examples_dir()
    if d is None:
        pytest.skip("official demo clips not found: set STCHAT_VIDEOS or place them in ../shared/videos")
    return d
