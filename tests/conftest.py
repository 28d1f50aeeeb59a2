"""Shared test fixtures: the real models and data of ../shared (or $FACELENS_SHARED)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared"))
MODELS_DIR = Path(os.environ.get("FACELENS_MODELS_DIR", SHARED / "models"))
DATA = SHARED / "data"
VIDEOS = DATA / "videos"

if not (MODELS_DIR / "intel").is_dir():
    raise pytest.UsageError(f"models not found in {MODELS_DIR}: set FACELENS_MODELS_DIR or FACELENS_SHARED")

# Tests never download: the library resolves models from the shared folder, and a test that wants
# the cache or the network points these elsewhere itself.
os.environ["FACELENS_MODELS_DIR"] = str(MODELS_DIR)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keep every test away from the user's real model cache."""
    monkeypatch.setenv("FACELENS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def warnings_log(caplog):
    """Warnings of the "facelens" logger, even after the CLI has stopped it propagating."""
    logger = logging.getLogger("facelens")
    previous = logger.propagate
    logger.propagate = True
    caplog.set_level(logging.WARNING, logger="facelens")
    yield caplog
    logger.propagate = previous
