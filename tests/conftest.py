"""Shared fixtures: composed configs, a temp MLflow store, tiny training overrides, and two ways to run a
command: in this process (`run_main`, the default: TensorFlow is imported once per session) and in a
subprocess (`run_cli`, for what only a process shows: exit statuses, signals, the README's commands)."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = REPO.parent / "shared" / "data" / "isic-real"
CI = os.environ.get("CI") == "true"

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


def _keep_streams_open_when_hydra_resets_logging() -> None:
    """Hydra reconfigures logging at every in-process run, closing every handler. absl's handler (installed with
    TensorFlow) then closes its stream unless it is the current sys.stderr: inside `run_main` that is pytest's
    capture buffer, which must stay open. A subprocess, like a user's command, never meets this."""
    import logging

    from absl import logging as absl_logging

    def close(self) -> None:
        self.flush()
        logging.StreamHandler.close(self)

    absl_logging.PythonHandler.close = close


_keep_streams_open_when_hydra_resets_logging()


@dataclass
class Result:
    """What a command left behind, in the shape of `subprocess.CompletedProcess`."""

    returncode: int
    stdout: str
    stderr: str


def run_main(*args: str, cwd: Path) -> Result:
    """`python -m skinexp ARGS` in this process, from `cwd`: the real entry point, Hydra and jobs."""
    from skinexp.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    previous_dir, previous_argv = Path.cwd(), list(sys.argv)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    except SystemExit as exit_:  # argparse (Hydra's own flags) exits
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.chdir(previous_dir)
        sys.argv = previous_argv
    return Result(code, out.getvalue(), err.getvalue())


def run_cli(*args: str, cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m skinexp ARGS` in a subprocess, as a user would run it."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "skinexp", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def error_line(result) -> str:
    """The one `skinexp: error:` line of a refused command (exit 2, no traceback); fails otherwise."""
    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("skinexp: error:"), result.stderr[-3000:]
    return lines[0]


@pytest.fixture
def store(tmp_path: Path) -> dict[str, str]:
    """A fresh SQLite store and artifact root in a temp dir, as overrides and as a URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return {"uri": uri, "overrides": [f"tracking.uri={uri}", f"tracking.artifact_root={tmp_path / 'artifacts'}"]}


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def main():
    return run_main


@pytest.fixture
def compose():
    from skinexp.config.compose import compose as compose_config

    return compose_config


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One tiny training run, shared by the tests that read a run back (train, evaluate, predict, rerun).

    20 synthetic images at 32 px: 5 held out for test, 3 for validation; 2 epochs, samples every epoch.
    """
    from mlflow.tracking import MlflowClient

    workdir = tmp_path_factory.mktemp("trained")
    uri = f"sqlite:///{workdir / 'store' / 'mlflow.db'}"
    result = run_main("train", *TINY, "dataset.num_samples=20", "dataset.test_split=0.25", "train.sample_every=1",
                      "model.filters=6", "optim.lr=1e-3", f"tracking.uri={uri}", "tracking.experiment=e2e",
                      cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("e2e")
    (run,) = client.search_runs([experiment.experiment_id])
    return {"result": result, "client": client, "run": run, "experiment": experiment, "workdir": workdir,
            "uri": uri}


def unavailable(reason: str, allow_module_level: bool = False) -> NoReturn:
    """A test cannot run because a part of the machine (Chromium, PostgreSQL, Slurm, root, JAX) or the real
    images are missing: skip it here, but fail it under CI=true, where a skip would hide a test that never ran.
    GPU-only tests do not call this: CI runs on CPUs."""
    if CI:
        pytest.fail(f"CI=true, and {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=allow_module_level)


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    """A run trained in this process sets Keras' global dtype policy; on a processor with bf16
    (`train.precision=auto`: AVX512_BF16 or AMX) it is mixed_bfloat16, and the next test of the worker would build
    its models in bf16 (on an AMX Xeon, two float32 checks of test_unet failed by 6e-4)."""
    yield
    if "keras" in sys.modules:  # tests that never imported Keras leave it unimported
        sys.modules["keras"].mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session", autouse=True)
def xdist_groups_kept(request: pytest.FixtureRequest) -> None:
    """`--dist loadgroup` keeps an xdist_group in one worker through the `@group` pytest-xdist appends to node ids;
    where pytest drops it (pytest 9.2 with xdist 3.8), two workers would each start a Slurm or a shared server."""
    if getattr(request.config.option, "loadgroup", False):
        lost = [item.nodeid for item in request.session.items
                if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
        if lost:
            pytest.fail(f"--dist loadgroup lost the xdist_group of {len(lost)} tests (pytest-xdist#1386: pytest 9.2 "
                        f"drops it, pytest<9.2 keeps it). Received: {lost[0]}", pytrace=False)


@pytest.fixture(scope="session")
def jax_installed() -> None:
    """JAX (make install-jax); session-scoped, so it is checked before any module fixture trains on it."""
    if importlib.util.find_spec("jax") is None:
        unavailable("JAX is not installed (make install-jax)")


@pytest.fixture
def real_data() -> Path:
    """The real images and their manifest (../shared/data/isic-real)."""
    if not ((REAL_DATA / "images").is_dir() and (REAL_DATA / "manifest.csv").is_file()):
        unavailable(f"the real images are not at {REAL_DATA}")
    return REAL_DATA
