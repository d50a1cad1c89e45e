"""`python -m skinexp serve run=<run id | models:/name@alias | models:/name/version> [port=5001] [uri=...]
[workers=auto] [max_pixels=40000000] [max_rows=16] [max_body_mb=64]`: MLflow's scoring server for the run's
`segmenter` on 127.0.0.1 under uvicorn, in the current environment (no conda, no virtualenv), behind limits.

POST /invocations `{"dataframe_split": {"columns": ["image"], "data": [[<base64 JPEG/PNG/BMP>]]}}` answers
`{"predictions": [{"mask": <base64 PNG>, "lesion_fraction": 0.12}]}`. A body over `max_body_mb` MiB, more than
`max_rows` images or an image of more than `max_pixels` pixels (by its header, before decoding) is answered 413; a
bad image 400; each with one line. `workers=auto` starts one worker per core, at most 4. The command replaces this
process (`exec`), so Ctrl-C reaches the server directly.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from skinexp import tracking
from skinexp.cli.options import check_port_free, parse_options, usage, wants_help
from skinexp.config.schema import DEFAULT_TRACKING
from skinexp.errors import ConfigError


# The limits' defaults are the served model's and the endpoint's own (they also hold under `mlflow models serve`).
@dataclass
class ServeOptions:
    run: str = ""
    port: int = 5001
    host: str = "127.0.0.1"
    uri: str = DEFAULT_TRACKING.uri
    workers: str = "auto"  # or a number
    max_pixels: int = 40_000_000
    max_rows: int = 16
    max_body_mb: int = 64


LIMITS = {"max_pixels": "SKINEXP_SERVE_MAX_PIXELS", "max_rows": "SKINEXP_SERVE_MAX_ROWS"}
MAX_WORKERS = 4


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


def worker_count(text: str) -> int:
    """`workers=auto`: one per core this process may use, at most MAX_WORKERS (each holds its own model)."""
    if text == "auto":
        return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"serve workers must be a positive number or auto. Received: workers={text}")
    return int(text)


def _positive(options: ServeOptions, key: str) -> int:
    value = getattr(options, key)
    if value < 1:
        raise ConfigError(f"serve {key} must be a positive whole number. Received: {key}={value}")
    return value


def serve_command(args: list[str]) -> int:
    if wants_help(args):
        print(usage("serve", ServeOptions))
        return 0
    options = parse_options("serve", args, ServeOptions)
    if not options.run:
        raise ConfigError("serve needs run=<run id | models:/name@alias>. Received: no run")
    workers = worker_count(options.workers)
    limits = {env: str(_positive(options, key)) for key, env in LIMITS.items()}
    body_bytes = _positive(options, "max_body_mb") * 1024 * 1024
    port = check_port_free("serve", options.host, options.port)
    uri = tracking.open_store_uri(options.uri, Path.cwd(), "uri")
    served = model_uri(options.run, options.uri)
    local = tracking.local_model(served)
    print(f"skinexp: serving {options.run} ({served}) at http://{options.host}:{port}/invocations with "
          f"{workers} worker(s), at most {options.max_rows} images of {options.max_pixels} pixels in "
          f"{options.max_body_mb} MiB per request (ready in 10-30 s; Ctrl-C stops it)", flush=True)
    os.environ.update(limits)
    os.environ.update({"SKINEXP_SERVE_MAX_BODY_BYTES": str(body_bytes), "SKINEXP_SERVE_MODEL": local,
                       "MLFLOW_TRACKING_URI": uri})
    command = [sys.executable, "-m", "uvicorn", "--factory", "skinexp.tracking.endpoint:create_app",
               "--host", options.host, "--port", str(port), "--workers", str(workers)]
    os.execv(command[0], command)
    return 0
