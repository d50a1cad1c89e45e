"""`python -m skinexp ui [port=5000] [uri=...] [experiment=...] [workers=1]`: the MLflow UI over a local store.

The UI binds 127.0.0.1 unless told otherwise (host=...). It replaces this process (`exec`), so Ctrl-C in the
terminal reaches MLflow's server directly and stops it with all of its workers.
"""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

DEFAULTS = {"port": "5000", "host": "127.0.0.1", "uri": "sqlite:///runs/mlflow.db", "experiment": "skinexp",
            "artifact_root": "runs/artifacts", "workers": "1"}


def _options(args: list[str]) -> dict[str, str]:
    from skinexp.cli import parse_options

    return parse_options("ui", args, DEFAULTS)


def _free_port(host: str, port_text: str) -> int:
    """The port as an int once we know nothing listens on it, so the failure is one line and not a traceback."""
    from skinexp.cli import fail

    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        fail(f"ui port must be a number from 1 to 65535. Received: port={port_text}")
    port = int(port_text)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As uvicorn does: connections of a previous UI left in TIME_WAIT must not count as "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            fail(f"cannot serve the UI on {host}:{port} ({error.strerror}); stop what uses it or pick another "
                 f"port (make ui UI_PORT=5001). Received: port={port}")
    return port


def ui_command(args: list[str]) -> int:
    """Create the store and experiment if needed, print the runs-table URL, then run `mlflow ui` in place."""
    from types import SimpleNamespace

    from skinexp.cli import fail
    from skinexp.tracking import prepare_store, resolve_uri, runs_page_url

    options = _options(args)
    if options["uri"].startswith(("http://", "https://")):
        fail(f"ui serves a local store (sqlite:///... or a folder); a tracking server has its own UI at its "
             f"address. Received: uri={options['uri']}")
    if not options["workers"].isdigit() or int(options["workers"]) < 1:
        fail(f"ui workers must be a positive number. Received: workers={options['workers']}")
    port = _free_port(options["host"], options["port"])
    tracking = SimpleNamespace(uri=options["uri"], experiment=options["experiment"],
                               artifact_root=options["artifact_root"])
    uri, experiment_id = prepare_store(tracking, Path.cwd())
    url = runs_page_url(f"http://{options['host']}:{port}", experiment_id)
    print(f"skinexp: MLflow UI for {uri} (it answers in 10-30 s; Ctrl-C stops it)\nskinexp: runs table: {url}",
          flush=True)

    # Job execution only serves MLflow's GenAI features (judges, scorers, prompt optimisation). Left on, it adds a
    # job runner and seven queue consumers, doubles the start-up time and leaves a folder in /dev/shm per start.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    mlflow = Path(sys.executable).with_name("mlflow")
    launcher = [str(mlflow)] if mlflow.exists() else [sys.executable, "-m", "mlflow"]
    command = [*launcher, "ui", "--backend-store-uri", uri, "--host", options["host"], "--port", str(port),
               "--workers", options["workers"],
               # Artifacts of experiments created through the UI go under runs/ too, not ./mlartifacts.
               "--artifacts-destination", resolve_uri(options["artifact_root"], Path.cwd())]
    os.execv(command[0], command)
    return 0
