"""`python -m skinexp ui [port=5000] [uri=...] [experiment=...]`: the MLflow UI over the local store, on 127.0.0.1."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def _options(args: list[str]) -> dict[str, str]:
    from skinexp.cli import parse_options

    return parse_options("ui", args, {"port": "5000", "host": "127.0.0.1", "uri": "sqlite:///runs/mlflow.db",
                                      "experiment": "skinexp", "artifact_root": "runs/artifacts"})


def ui_command(args: list[str]) -> int:
    """Create the store and experiment if needed, print the runs-table URL, then run `mlflow ui` in place."""
    from types import SimpleNamespace

    from skinexp.tracking import prepare_store, resolve_uri, runs_page_url

    options = _options(args)
    tracking = SimpleNamespace(uri=options["uri"], experiment=options["experiment"],
                               artifact_root=options["artifact_root"])
    uri, experiment_id = prepare_store(tracking, Path.cwd())
    print(f"skinexp: MLflow UI for {resolve_uri(options['uri'], Path.cwd())}\n"
          f"skinexp: runs table: {runs_page_url(options['host'], int(options['port']), experiment_id)}", flush=True)
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "ui", "--backend-store-uri", uri, "--host", options["host"], "--port", options["port"]]
    os.execv(command[0], command)
    return 0
