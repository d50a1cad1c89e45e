"""Tracking throughput: metrics per second into a local SQLite store and through the team server (PostgreSQL,
basic-auth), in the same run, the way training logs them (skinexp.tracking.log_metrics: one batch per epoch).

    python benchmarks/server.py [--runs 4] [--epochs 50] [--metrics 12] [--repeats 3] [--uri http://HOST:PORT]

Without --uri it starts `python -m skinexp server` (private PostgreSQL cluster) in a temporary folder and stops it
at the end; with --uri it uses that server and the login in MLFLOW_TRACKING_USERNAME / _PASSWORD. Each repeat logs
`runs` runs of `epochs` batches of `metrics` values into each store; the table gives the mean, the spread (standard
deviation, min..max) over the repeats, and the server's rate relative to SQLite (median of the per-repeat ratios;
the two stores alternate within each repeat). Writes `docs/server.json`.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from machine import DOCS, metadata, spread, write

ADMIN_PASSWORD = "benchmark-admin-password"


def start_server(folder: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "SKINEXP_SERVER_ADMIN_PASSWORD": ADMIN_PASSWORD}
    log = open(folder / "server.out", "w")
    process = subprocess.Popen([sys.executable, "-m", "skinexp", "server", f"port={port}"], cwd=folder, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if re.search(r"ready at ", (folder / "server.out").read_text()):
            return process
        if process.poll() is not None:
            break
        time.sleep(0.3)
    raise SystemExit(f"the server did not start:\n{(folder / 'server.out').read_text()[-2000:]}")


def log_runs(uri: str, artifact_root: Path, runs: int, epochs: int, metrics: int) -> float:
    """Seconds to log `runs` runs x `epochs` batches of `metrics` values, through skinexp.tracking."""
    from skinexp import tracking

    config = SimpleNamespace(uri=uri, experiment="benchmark", artifact_root=str(artifact_root), retry_seconds=60)
    _, experiment_id = tracking.prepare_store(config, Path.cwd())
    names = [f"metric_{index}" for index in range(metrics)]
    started = time.perf_counter()
    for number in range(runs):
        with tracking.run(experiment_id, f"bench {number}"):
            for epoch in range(1, epochs + 1):
                tracking.log_metrics({name: epoch * 0.01 + index for index, name in enumerate(names)}, step=epoch)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--metrics", type=int, default=12, help="values per batch (a training epoch logs 14)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--uri", default="", help="an existing server (default: start one)")
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args()
    meta = metadata(args.repeats)

    folder = Path(tempfile.mkdtemp(prefix="skinexp-bench-server-"))
    folder.chmod(0o755)  # the `postgres` user reaches its cluster through it
    server = None
    try:
        uri = args.uri
        if not uri:
            from skinexp.team.postgres import unused_port

            port = unused_port()
            server = start_server(folder, port)
            uri = f"http://127.0.0.1:{port}"
            os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD)
        stores = {"SQLite (local file)": f"sqlite:///{folder / 'mlflow.db'}", "server (PostgreSQL, logins)": uri}
        values = args.runs * args.epochs * args.metrics
        rates: dict[str, list[float]] = {name: [] for name in stores}
        for _ in range(args.repeats):
            for name, store in stores.items():
                rates[name].append(values / log_runs(store, folder / "artifacts", args.runs, args.epochs,
                                                     args.metrics))
        print(f"{args.runs} runs x {args.epochs} batches x {args.metrics} metrics = {values} values per store, "
              f"{args.repeats} repeats\n")
        print("| store | metrics/s (mean) | spread (sd; min..max) | batches/s | vs SQLite |\n|---|---|---|---|---|")
        sqlite = rates["SQLite (local file)"]
        stores_out = {}
        for name, series in rates.items():
            ratios = [value / base for value, base in zip(series, sqlite)]
            stores_out[name] = {"metrics_per_s": spread(series),
                                "batches_per_s": statistics.mean(series) / args.metrics,
                                "vs_sqlite": statistics.median(ratios), "vs_sqlite_range": [min(ratios), max(ratios)]}
            row = stores_out[name]["metrics_per_s"]
            print(f"| {name} | {row['mean']:,.0f} | {row['sd']:,.0f}; {row['min']:,.0f}..{row['max']:,.0f} | "
                  f"{row['mean'] / args.metrics:,.1f} | {stores_out[name]['vs_sqlite']:.2f}x |")
        write("server", {"meta": meta, "runs": args.runs, "batches_per_run": args.epochs,
                         "metrics_per_batch": args.metrics, "server": "started by the benchmark" if not args.uri
                         else "given by --uri", "stores": stores_out, "samples": rates}, args.out)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    main()
