"""`python -m skinexp serve run=<run id | models:/name@alias | models:/name/version> [port=5001] [uri=...]`:
`mlflow models serve` of the run's `segmenter` on 127.0.0.1, in the current environment (no conda, no virtualenv).

POST /invocations `{"dataframe_split": {"columns": ["image"], "data": [[<base64 JPEG/PNG/BMP>]]}}` answers
`{"predictions": [{"mask": <base64 PNG>, "lesion_fraction": 0.12}]}`. The command replaces this process (`exec`),
so Ctrl-C reaches MLflow's server directly.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from skinexp import tracking
from skinexp.config.schema import DEFAULT_TRACKING
from skinexp.errors import ConfigError
from skinexp.options import free_port, parse_options, usage, wants_help

DEFAULTS = {"run": "", "port": "5001", "host": "127.0.0.1", "uri": DEFAULT_TRACKING.uri, "workers": "1"}


def model_uri(reference: str, options_uri: str) -> str:
    """The URI `mlflow models serve -m` takes: the registered version itself, or a run's segmenter."""
    if reference.startswith("models:/"):
        tracking.model_version(reference)  # unknown name, alias or version: one line now, not in the server
        return reference
    run = tracking.get_run(reference)
    if run is None:
        raise ConfigError(f"run must be an MLflow run id in {options_uri} or models:/<name>@<alias>. "
                          f"Received: run={reference}")
    return tracking.serving_uri(run)


def serve_command(args: list[str]) -> int:
    if wants_help(args):
        print(usage("serve", DEFAULTS))
        return 0
    options = parse_options("serve", args, DEFAULTS)
    if not options["run"]:
        raise ConfigError("serve needs run=<run id | models:/name@alias>. Received: no run")
    if not options["workers"].isdigit() or int(options["workers"]) < 1:
        raise ConfigError(f"serve workers must be a positive number. Received: workers={options['workers']}")
    port = free_port("serve", options["host"], options["port"])
    uri = tracking.open_store_uri(options["uri"], Path.cwd(), "uri")
    served = model_uri(options["run"], options["uri"])
    print(f"skinexp: serving {options['run']} ({served}) at http://{options['host']}:{port}/invocations "
          f"(ready in 10-30 s; Ctrl-C stops it)", flush=True)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # how the server finds models:/ in this store
    bin_dir = str(Path(sys.executable).parent)  # MLflow starts `uvicorn` by name: this environment's, unactivated
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    mlflow = Path(sys.executable).with_name("mlflow")
    launcher = [str(mlflow)] if mlflow.exists() else [sys.executable, "-m", "mlflow"]
    command = [*launcher, "models", "serve", "-m", served, "--env-manager", "local", "-h", options["host"],
               "-p", str(port), "-w", options["workers"]]
    os.execv(command[0], command)
    return 0
