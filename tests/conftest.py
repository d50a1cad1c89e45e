"""Shared fixtures: composed configs, a temp MLflow store, tiny training overrides, a CLI runner."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = REPO.parent / "shared" / "data" / "isic-real"

# A U-Net and dataset small enough to train in seconds on two CPU cores.
TINY = [
    "dataset.image_size=32",
    "dataset.num_samples=16",
    "model.depth=2",
    "model.filters=4",
    "train.epochs=2",
    "train.batch_size=4",
    "train.sample_count=2",
    "train.verbose=0",
]


@pytest.fixture
def store(tmp_path: Path) -> dict[str, str]:
    """A fresh SQLite store and artifact root in a temp dir, as overrides and as a URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return {"uri": uri, "overrides": [f"tracking.uri={uri}", f"tracking.artifact_root={tmp_path / 'artifacts'}"]}


def run_cli(*args: str, cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m skinexp ARGS` in a subprocess, as a user would run it."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "skinexp", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def compose():
    from skinexp.cli import compose as compose_config

    return compose_config


@pytest.fixture
def real_data() -> Path:
    if not (REAL_DATA / "images").is_dir():
        pytest.skip(f"real data not found at {REAL_DATA}")
    return REAL_DATA
