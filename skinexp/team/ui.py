"""`python -m skinexp ui [port=5000] [uri=...] [experiment=...] [workers=1]`: the MLflow UI over a local store.

The UI binds 127.0.0.1 unless told otherwise (host=...). It replaces this process (`exec`), so Ctrl-C in the
terminal reaches MLflow's server directly and stops it with all of its workers.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from skinexp.cli.options import check_port_free, parse_options, usage, wants_help
from skinexp.config.schema import DEFAULT_TRACKING
from skinexp.errors import ConfigError

UI_HOST, UI_PORT = "127.0.0.1", int(os.environ.get("SKINEXP_UI_PORT", "5000"))
@dataclass
class UiOptions:
    port: int = UI_PORT
    host: str = UI_HOST
    uri: str = DEFAULT_TRACKING.uri
    experiment: str = DEFAULT_TRACKING.experiment
    artifact_root: str = DEFAULT_TRACKING.artifact_root
    workers: int = 1


def ui_command(args: list[str]) -> int:
    """Create the store and experiment if needed, print the runs-table URL, then run `mlflow ui` in place."""
    from skinexp.tracking import prepare_store, resolve_uri, runs_page_url

    if wants_help(args):
        print(usage("ui", UiOptions))
        return 0
    options = parse_options("ui", args, UiOptions)
    if options.uri.startswith(("http://", "https://")):
        raise ConfigError(f"ui serves a local store (sqlite:///... or a folder); a tracking server has its own UI "
                          f"at its address. Received: uri={options.uri}")
    if options.workers < 1:
        raise ConfigError(f"ui workers must be a positive number. Received: workers={options.workers}")
    port = check_port_free("ui", options.host, options.port, "pick another port (make ui UI_PORT=5001)")
    uri, experiment_id = prepare_store(options, Path.cwd())  # it reads uri, experiment and artifact_root
    url = runs_page_url(f"http://{options.host}:{port}", experiment_id)
    print(f"skinexp: MLflow UI for {uri} (it answers in 10-30 s; Ctrl-C stops it)\nskinexp: runs table: {url}",
          flush=True)

    # Job execution only serves MLflow's GenAI features (judges, scorers, prompt optimisation). Left on, it adds a
    # job runner and seven queue consumers, doubles the start-up time and leaves a folder in /dev/shm per start.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    mlflow = Path(sys.executable).with_name("mlflow")
    launcher = [str(mlflow)] if mlflow.exists() else [sys.executable, "-m", "mlflow"]
    command = [*launcher, "ui", "--backend-store-uri", uri, "--host", options.host, "--port", str(port),
               "--workers", str(options.workers),
               # Artifacts of experiments created through the UI go under runs/ too, not ./mlartifacts.
               "--artifacts-destination", resolve_uri(options.artifact_root, Path.cwd())]
    os.execv(command[0], command)
    return 0
