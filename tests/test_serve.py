"""`serve`: refusals in one line (default), and a real `mlflow models serve` answering masks over HTTP (slow)."""
from __future__ import annotations

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import REAL_DATA, error_line, run_main


def test_serve_refuses_a_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = error_line(run_main("serve", "run=abc", f"port={port}", cwd=tmp_path))
    assert f"cannot serve on 127.0.0.1:{port}" in line and line.endswith(f"Received: port={port}")


def test_serve_refuses_unknown_run_and_alias(trained, tmp_path):
    port = f"port={_free_port()}"
    line = error_line(run_main("serve", "run=0123abc", port, f"uri={trained['uri']}", cwd=tmp_path))
    assert line.endswith("Received: run=0123abc")
    line = error_line(run_main("serve", "run=models:/nosuch@champion", port, f"uri={trained['uri']}", cwd=tmp_path))
    assert "no registered model named nosuch" in line


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    """`serve run=models:/skinexp-serve@live` in its own process group, stopped (the whole group) at the end."""
    import requests

    result = run_main("register", f"run={trained['run'].info.run_id}", "name=skinexp-serve", "alias=live",
                      f"uri={trained['uri']}", cwd=trained["workdir"])
    assert result.returncode == 0, result.stderr[-2000:]
    port, logs = _free_port(), tmp_path_factory.mktemp("serve")
    with open(logs / "serve.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "skinexp", "serve", "run=models:/skinexp-serve@live",
                                    f"port={port}", f"uri={trained['uri']}"], cwd=trained["workdir"], stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if requests.get(url + "/ping", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (logs / "serve.log").read_text()[-3000:]
            time.sleep(1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _post(url: str, payloads: list[str]):
    import requests

    return requests.post(url + "/invocations", timeout=120,
                         json={"dataframe_split": {"columns": ["image"], "data": [[p] for p in payloads]}})


@pytest.mark.slow
def test_served_masks_equal_predict(server, trained, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray((rng.random((50, 70, 3)) * 255).astype(np.uint8)).save(folder / "synthetic.png")
    Image.fromarray((rng.random((90, 120, 3)) * 255).astype(np.uint8)).save(folder / "synthetic_jpeg.jpg")
    real = sorted((REAL_DATA / "images").glob("*.jpg"))[:1]
    if real:
        (folder / real[0].name).write_bytes(real[0].read_bytes())
    files = sorted(folder.iterdir())
    result = run_main("predict", f"run={trained['run'].info.run_id}", "input=in", "output=out",
                      f"tracking.uri={trained['uri']}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]

    answer = _post(server, [base64.b64encode(path.read_bytes()).decode() for path in files])
    assert answer.status_code == 200, answer.text[-2000:]
    predictions = answer.json()["predictions"]
    assert len(predictions) == len(files) == (3 if real else 2)
    for path, prediction in zip(files, predictions):
        mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(prediction["mask"]))))
        expected = np.asarray(Image.open(tmp_path / "out" / f"{path.stem}.png"))
        assert mask.shape == Image.open(path).size[::-1]
        assert np.array_equal(mask, expected), path.name
        assert prediction["lesion_fraction"] == pytest.approx((expected > 0).mean())


@pytest.mark.slow
def test_corrupt_image_answers_400_naming_the_row_and_the_server_keeps_serving(server):
    good = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 120, 90)).save(good, format="BMP")
    good_text = base64.b64encode(good.getvalue()).decode()
    answer = _post(server, [good_text, base64.b64encode(b"not an image").decode()])
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert "\n" not in message and message.startswith("row 1: ") and "Received:" in message
    assert "stack_trace" not in answer.json()
    again = _post(server, [good_text])
    assert again.status_code == 200 and len(again.json()["predictions"]) == 1
