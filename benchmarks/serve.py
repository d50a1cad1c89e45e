"""Serving latency: `python -m skinexp serve` (mlflow models serve, one worker) vs predict's steps in-process.

One 600x450 JPEG per request (a real ISIC image resized, else a synthetic one), sent sequentially as base64 in
`dataframe_split`; the in-process side decodes the same bytes, resizes, predicts, resizes back, thresholds and
encodes the PNG as `skinexp predict` does. Both use the same run. Without --run, a small run is trained first
in a temporary store. Prints requests/s and median / p95 latency of each side.

    python benchmarks/serve.py [--run RUN_ID --uri sqlite:///runs/mlflow.db] [--requests 30] [--size 128]
"""
from __future__ import annotations

import argparse
import base64
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


def stats(latencies: list[float], total: float) -> str:
    milliseconds = np.array(latencies) * 1000
    return (f"{len(latencies) / total:7.1f} req/s   median {np.median(milliseconds):7.1f} ms   "
            f"p95 {np.percentile(milliseconds, 95):7.1f} ms")


def time_calls(call, count: int) -> tuple[list[float], float]:
    for _ in range(3):  # warm-up: graph tracing, first connections
        call()
    latencies, start = [], time.perf_counter()
    for _ in range(count):
        began = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - began)
    return latencies, time.perf_counter() - start


def served(run_id: str, uri: str, workdir: Path, payload: str, count: int):
    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(workdir / "serve.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "skinexp", "serve", f"run={run_id}", f"port={port}",
                                f"uri={uri}"], cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
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

        return time_calls(call, count)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


def in_process(run_id: str, uri: str, workdir: Path, data: bytes, count: int):
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

    return time_calls(call, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run"), parser.add_argument("--uri", default="sqlite:///runs/mlflow.db")
    parser.add_argument("--requests", type=int, default=30), parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory(prefix="skinexp-bench-serve-") as scratch:
        workdir = Path(scratch) if not args.run else Path.cwd()
        run_id, uri = (args.run, args.uri) if args.run else train_small(Path(scratch), args.size)
        data = jpeg_600x450()
        payload = base64.b64encode(data).decode()
        print(f"run {run_id}, one 600x450 JPEG ({len(data) // 1024} KiB) per request, {args.requests} requests")
        http = served(run_id, uri, workdir, payload, args.requests)
        local = in_process(run_id, uri, workdir, data, args.requests)
    print(f"serve (HTTP, 1 worker)   {stats(*http)}")
    print(f"predict in-process       {stats(*local)}")
    print(f"HTTP overhead: {np.median(http[0]) / np.median(local[0]):.2f}x the in-process median")


if __name__ == "__main__":
    main()
