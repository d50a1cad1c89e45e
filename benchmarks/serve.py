"""Serving latency: `python -m skinexp serve` (mlflow models serve, one worker) vs predict's steps in-process.

One 600x450 JPEG per request (a real ISIC image resized, else a synthetic one), sent sequentially as base64 in
`dataframe_split`; the in-process side decodes the same bytes, resizes, predicts, resizes back, thresholds and
encodes the PNG as `skinexp predict` does. Both use the same run. Without --run, a small run is trained first
in a temporary store. After 3 warm-up requests per side, `--repeats` rounds each send `--requests` requests to one
side, then to the other; prints requests/s and median / p95 latency of each side with their spread over the rounds,
and writes them to `docs/serve.json`.

    python benchmarks/serve.py [--run RUN_ID --uri sqlite:///runs/mlflow.db] [--requests 30] [--repeats 3] [--size 128]
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import DOCS, metadata, spread, write

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isic-real" / "images"


def jpeg_600x450() -> bytes:
    from PIL import Image

    files = sorted(REAL.glob("*.jpg")) if REAL.is_dir() else []
    if files:
        image = Image.open(files[0]).convert("RGB").resize((600, 450), Image.BILINEAR)
    else:
        image = Image.fromarray((np.random.default_rng(0).random((450, 600, 3)) * 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def train_small(workdir: Path, size: int) -> tuple[str, str]:
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    subprocess.run([sys.executable, "-m", "skinexp", "train", f"dataset.image_size={size}", "dataset.num_samples=16",
                    "model.depth=3", "model.filters=8", "train.epochs=1", "train.batch_size=8", "train.verbose=0",
                    f"tracking.uri={uri}", f"tracking.artifact_root={workdir / 'artifacts'}"],
                   cwd=workdir, check=True, capture_output=True)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("skinexp").experiment_id])
    return run.info.run_id, uri


def time_calls(call, count: int) -> tuple[list[float], float]:
    """Latencies of `count` sequential calls and the seconds they took together."""
    latencies, start = [], time.perf_counter()
    for _ in range(count):
        began = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - began)
    return latencies, time.perf_counter() - start


@contextlib.contextmanager
def served(run_id: str, uri: str, workdir: Path, payload: str):
    """`python -m skinexp serve` on a free port for the duration; yields one request's call."""
    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(workdir / "serve.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "skinexp", "serve", f"run={run_id}", f"port={port}",
                                f"uri={uri}", "workers=1"], cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if requests.get(url + "/ping", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                if process.poll() is not None:
                    raise SystemExit((workdir / "serve.log").read_text()[-3000:]) from None
                time.sleep(1)
        body = {"dataframe_split": {"columns": ["image"], "data": [[payload]]}}
        session = requests.Session()

        def call():
            answer = session.post(url + "/invocations", json=body, timeout=120)
            answer.raise_for_status()

        yield call
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


def in_process(run_id: str, uri: str, workdir: Path, data: bytes):
    """predict's steps on one image in this process (the model loaded once); returns one request's call."""
    from types import SimpleNamespace

    from PIL import Image

    from skinexp.data.arrays import resize
    from skinexp.evaluation import postprocess
    from skinexp.evaluation.inference import load_trained, predict_probabilities

    trained = load_trained(run_id, SimpleNamespace(uri=uri, experiment="skinexp", artifact_root="artifacts"), workdir)

    def call():
        image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        batch = resize(image[None], trained.image_size, Image.BILINEAR)
        probability = predict_probabilities(trained.model, batch, 1)[0]
        full = Image.fromarray(probability[..., 0], mode="F").resize(image.shape[1::-1], Image.BILINEAR)
        mask = postprocess.to_masks(np.asarray(full)[None, ..., None], trained.threshold, False)[0, ..., 0]
        Image.fromarray(mask * 255).save(io.BytesIO(), format="PNG")

    return call


def summarise(rounds: list[dict[str, list[float]]], count: int) -> dict:
    """Per side: the spread over rounds of requests/s and of the median latency, p95 over all requests, and the
    median of the per-round ratios of the median latencies (serve / in-process)."""
    sides = {}
    for side in SIDES:
        medians = [float(np.median(r[side]["latencies"])) * 1000 for r in rounds]
        everything = np.concatenate([r[side]["latencies"] for r in rounds]) * 1000
        sides[side] = {"requests_per_s": spread([count / r[side]["seconds"] for r in rounds]),
                       "median_ms": spread(medians), "p95_ms_all_requests": float(np.percentile(everything, 95))}
    ratios = [np.median(r["serve"]["latencies"]) / np.median(r["in-process"]["latencies"]) for r in rounds]
    return {"sides": sides, "serve_over_in_process": spread(ratios)}


SIDES = {"serve": "`serve` (HTTP, JSON base64 in and out, 1 worker)",
         "in-process": "predict's steps in-process (decode, resize, predict, resize back, threshold, PNG)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run"), parser.add_argument("--uri", default="sqlite:///runs/mlflow.db")
    parser.add_argument("--requests", type=int, default=30, help="requests per side in each round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, the two sides interleaved in each")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args()
    meta = metadata(args.repeats)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory(prefix="skinexp-bench-serve-") as scratch:
        workdir = Path(scratch) if not args.run else Path.cwd()
        run_id, uri = (args.run, args.uri) if args.run else train_small(Path(scratch), args.size)
        data = jpeg_600x450()
        payload = base64.b64encode(data).decode()
        print(f"run {run_id}, one 600x450 JPEG ({len(data) // 1024} KiB) per request, {args.requests} requests "
              f"per side, {args.repeats} interleaved rounds", file=sys.stderr)
        local = in_process(run_id, uri, workdir, data)
        with served(run_id, uri, workdir, payload) as http:
            calls = {"serve": http, "in-process": local}
            for call in calls.values():  # warm-up: graph tracing, first connections
                for _ in range(3):
                    call()
            rounds = []
            for _ in range(args.repeats):
                measured = {}
                for side, call in calls.items():
                    latencies, seconds = time_calls(call, args.requests)
                    measured[side] = {"latencies": latencies, "seconds": seconds}
                rounds.append(measured)
    summary = summarise(rounds, args.requests)
    for side, row in summary["sides"].items():
        print(f"{side:12s} {row['requests_per_s']['median']:6.1f} req/s   median {row['median_ms']['median']:6.1f} ms "
              f"({row['median_ms']['min']:.1f}..{row['median_ms']['max']:.1f} over rounds)   "
              f"p95 {row['p95_ms_all_requests']:6.1f} ms")
    print(f"serve / in-process median latency: {summary['serve_over_in_process']['median']:.2f}x")
    kept = [{side: {"seconds": m["seconds"], "latencies_ms": [round(v * 1000, 2) for v in m["latencies"]]}
             for side, m in r.items()} for r in rounds]
    write("serve", {"meta": meta, "requests_per_round": args.requests, "image": "600x450 JPEG",
                    "model_image_size": args.size, "sides": SIDES, "summary": summary, "rounds": kept}, args.out)


if __name__ == "__main__":
    main()
