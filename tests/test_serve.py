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
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REAL_DATA, error_line, run_main
from skinexp.team.postgres import unused_port

pytestmark = pytest.mark.xdist_group("serve")  # one served model for the slow tests


def test_serve_refuses_a_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = error_line(run_main("serve", "run=abc", f"port={port}", cwd=tmp_path))
    assert f"cannot serve on 127.0.0.1:{port}" in line and line.endswith(f"Received: port={port}")


def test_serve_refuses_unknown_run_and_alias(trained, tmp_path):
    port = f"port={unused_port()}"
    line = error_line(run_main("serve", "run=0123abc", port, f"uri={trained['uri']}", cwd=tmp_path))
    assert line.endswith("Received: run=0123abc")
    line = error_line(run_main("serve", "run=models:/nosuch@champion", port, f"uri={trained['uri']}", cwd=tmp_path))
    assert "no registered model named nosuch" in line


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    """`serve run=models:/skinexp-serve@live` in its own process group, stopped (the whole group) at the end."""
    import requests

    result = run_main("register", f"run={trained['run'].info.run_id}", "name=skinexp-serve", "alias=live",
                      f"uri={trained['uri']}", cwd=trained["workdir"])
    assert result.returncode == 0, result.stderr[-2000:]
    port, logs = unused_port(), tmp_path_factory.mktemp("serve")
    with open(logs / "serve.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "skinexp", "serve", "run=models:/skinexp-serve@live",
                                    f"port={port}", f"uri={trained['uri']}", "workers=2", "max_rows=4",
                                    "max_pixels=1000000", "max_body_mb=1"], cwd=trained["workdir"], stdout=log,
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
        yield {"url": url, "pid": process.pid}
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

    answer = _post(server["url"], [base64.b64encode(path.read_bytes()).decode() for path in files])
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
    answer = _post(server["url"], [good_text, base64.b64encode(b"not an image").decode()])
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert "\n" not in message and message.startswith("row 1: ") and "Received:" in message
    assert "stack_trace" not in answer.json()
    again = _post(server["url"], [good_text])
    assert again.status_code == 200 and len(again.json()["predictions"]) == 1


# --- Bounded endpoint: the decoder and the body cap, fast (no model, no TensorFlow) ---------------------------------

def _png_header_only(width: int, height: int, bit_depth: int = 1, color_type: int = 0) -> bytes:
    """A PNG's signature and IHDR claiming `width` x `height`, then a few bytes of IDAT: what a bomb sends."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _saved(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _gradient(width: int = 40, height: int = 24) -> np.ndarray:
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    return np.concatenate([np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1)),
                           np.full((height, width, 1), 90.0)], axis=2).astype(np.uint8)


@pytest.mark.parametrize("size, bomb", [((20000, 20000), True), ((13000, 13000), False)])
def test_an_image_over_the_pixel_cap_is_413_from_its_header_alone(size, bomb):
    """20000x20000 trips Pillow's own bomb check in `open`, 13000x13000 (169 MP, under Pillow's 179 MP) ours:
    both before a pixel is decoded, in one line naming the row."""
    from skinexp.tracking.segmenter import BadImage, decode_image

    with pytest.raises(BadImage) as refused:
        decode_image(_b64(_png_header_only(*size)), row=3)
    assert refused.value.get_http_status_code() == 413
    line = refused.value.message
    assert line.startswith("row 3: the image has more pixels than this endpoint decodes (40000000") and "\n" not in line
    assert ("DecompressionBombError" if bomb else "13000x13000 = 169000000 pixels") in line


def test_the_pixel_cap_is_the_environments_and_counts_width_times_height():
    from skinexp.tracking.segmenter import BadImage, decode_image

    data = _b64(_saved(Image.new("RGB", (100, 50)), "PNG"))
    assert decode_image(data, 0, max_pixels=5000).shape == (50, 100, 3)
    with pytest.raises(BadImage, match="100x50 = 5000 pixels"):
        decode_image(data, 0, max_pixels=4999)


def test_a_truncated_png_is_400_in_one_line():
    from skinexp.tracking.segmenter import BadImage, decode_image

    whole = _saved(Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)), "PNG")
    with pytest.raises(BadImage) as refused:
        decode_image(_b64(whole[: len(whole) // 2]), row=1)
    assert refused.value.get_http_status_code() == 400
    assert refused.value.message.startswith("row 1: image must be the base64 of a JPEG, PNG or BMP file. "
                                            "Received: ") and "\n" not in refused.value.message


def test_a_16_bit_grayscale_png_is_scaled_not_clipped_to_white():
    from skinexp.tracking.segmenter import decode_image

    wide = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)  # 0..65472
    rgb = decode_image(_b64(_saved(Image.fromarray(wide), "PNG")), 0)
    expected = np.rint(wide / 257.0).astype(np.uint8)
    assert rgb.dtype == np.uint8 and rgb.shape == (32, 32, 3)
    assert np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 2], expected)
    assert rgb.mean() == pytest.approx(127, abs=2)  # clipping gave ~254


def test_an_exif_rotated_jpeg_is_turned_upright_as_a_viewer_shows_it():
    from skinexp.tracking.segmenter import decode_image

    image = Image.fromarray(_gradient(40, 24))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    rgb = decode_image(_b64(_saved(image, "JPEG", quality=95, exif=exif.tobytes())), 0)
    assert rgb.shape == (40, 24, 3)
    upright = np.asarray(image.transpose(Image.Transpose.ROTATE_270))
    assert np.abs(rgb.astype(int) - upright.astype(int)).mean() < 4


def test_cmyk_jpeg_and_an_mpo_are_read_as_rgb():
    from skinexp.tracking.segmenter import decode_image

    image = Image.fromarray(_gradient())
    cmyk = decode_image(_b64(_saved(image.convert("CMYK"), "JPEG", quality=95)), 0)
    assert cmyk.shape == (24, 40, 3) and np.abs(cmyk.astype(int) - _gradient().astype(int)).mean() < 6
    mpo = _saved(image, "MPO", save_all=True, append_images=[Image.new("RGB", (40, 24), (255, 0, 0))])
    assert Image.open(io.BytesIO(mpo)).format == "MPO"
    first = decode_image(_b64(mpo), 0)
    assert first.shape == (24, 40, 3) and np.abs(first.astype(int) - _gradient().astype(int)).mean() < 4


def test_predict_and_the_endpoint_decode_every_kind_of_file_alike(tmp_path):
    """The two copies of the decoding steps (the served model may not import skinexp) give the same pixels."""
    from skinexp.data.folder import read_rgb
    from skinexp.tracking.segmenter import decode_image

    image = Image.fromarray(_gradient())
    exif = Image.Exif()
    exif[0x0112] = 8
    files = {"rotated.jpg": _saved(image, "JPEG", exif=exif.tobytes()),
             "wide.png": _saved(Image.fromarray((np.arange(600).reshape(20, 30) * 100).astype(np.uint16)), "PNG"),
             "cmyk.jpg": _saved(image.convert("CMYK"), "JPEG"), "palette.png": _saved(image.convert("P"), "PNG"),
             "alpha.png": _saved(image.convert("RGBA"), "PNG"), "bits.bmp": _saved(image.convert("1"), "BMP")}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        assert np.array_equal(read_rgb(tmp_path / name), decode_image(_b64(data), 0)), name


def test_more_rows_than_the_cap_is_413_before_any_image_is_decoded():
    import pandas as pd

    from skinexp.tracking.segmenter import BadImage, Segmenter

    segmenter = Segmenter()
    segmenter.max_rows = 2  # what load_context reads from SKINEXP_SERVE_MAX_ROWS
    with pytest.raises(BadImage) as refused:
        segmenter.predict(None, pd.DataFrame({"image": ["not decoded"] * 3}))
    assert refused.value.get_http_status_code() == 413
    assert refused.value.message == ("a request may hold at most 2 images (SKINEXP_SERVE_MAX_ROWS); send the rest in "
                                     "further requests. Received: 3 rows")


def test_serve_refuses_bad_limits_and_workers_in_one_line(tmp_path):
    for arg, expected in (("max_rows=0", "max_rows must be a positive whole number"),
                          ("max_pixels=lots", "Received: max_pixels=lots"), ("workers=-1", "Received: workers=-1")):
        assert expected in error_line(run_main("serve", "run=abc", arg, cwd=tmp_path))


def test_workers_auto_takes_the_cores_up_to_four():
    from skinexp.registry.serve import worker_count

    assert worker_count("auto") == max(1, min(4, len(os.sched_getaffinity(0))))
    assert worker_count("3") == 3


@pytest.fixture
def echo_server():
    """A real uvicorn on 127.0.0.1 serving an echo app behind BodyLimit(1000 bytes)."""
    import threading

    import uvicorn

    from skinexp.tracking.endpoint import BodyLimit

    async def echo(scope, receive, send):
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})

    port = unused_port()
    server = uvicorn.Server(uvicorn.Config(BodyLimit(echo, 1000), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_a_body_over_the_cap_is_413_declared_or_streamed_and_the_server_still_answers(echo_server):
    import requests

    assert requests.post(echo_server, data=b"x" * 1000, timeout=10).text == "1000"
    declared = requests.post(echo_server, data=b"x" * 1001, timeout=10)
    assert declared.status_code == 413
    assert declared.json()["message"] == ("a request body may hold at most 1000 bytes (SKINEXP_SERVE_MAX_BODY_BYTES); "
                                          "send fewer or smaller images per request. Received: 1001 bytes")
    streamed = requests.post(echo_server, data=iter([b"y" * 600] * 5), timeout=10)  # chunked: no Content-Length
    assert streamed.status_code == 413 and "Received: at least " in streamed.json()["message"]
    assert requests.post(echo_server, data=iter([b"z" * 400] * 2), timeout=10).text == "800"
    assert requests.get(echo_server, timeout=10).text == "0"


def _worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


@pytest.mark.slow
def test_every_bad_request_is_one_line_and_the_same_workers_keep_answering(server, trained, tmp_path):
    """Against the real server (2 workers, max_rows=4, max_pixels=1000000, max_body_mb=1): bombs, too many rows, a
    large body, broken and odd files; after each, a good image still gets its mask from the workers it started
    with (none was killed and replaced)."""
    url = server["url"]
    workers = sorted(_worker_pids(server["pid"]))
    assert len(workers) >= 2, workers
    good = _b64(_saved(Image.fromarray(_gradient()), "PNG"))
    noise = _saved(Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)), "PNG")
    wide = (np.arange(24 * 40).reshape(24, 40) * 60).astype(np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 6
    refused = {
        "bomb": ([_b64(_png_header_only(20000, 20000))], 413, "row 0: the image has more pixels"),
        "13000 px side": ([good, _b64(_png_header_only(13000, 13000))], 413, "row 1: the image has more pixels"),
        "over max_pixels": ([_b64(_saved(Image.new("RGB", (1001, 1000)), "PNG"))], 413, "1001x1000 = 1001000"),
        "rows": ([good] * 5, 413, "at most 4 images (SKINEXP_SERVE_MAX_ROWS)"),
        "truncated": ([_b64(noise[: len(noise) // 2])], 400, "row 0: image must be"),
        "not base64": (["%%%"], 400, "row 0: image must be"),
        "gif": ([_b64(_saved(Image.new("RGB", (8, 8)), "GIF"))], 400, "Received: format GIF"),
    }
    for name, (rows, status, expected) in refused.items():
        answer = _post(url, rows)
        assert answer.status_code == status, (name, answer.text[:500])
        message = answer.json()["message"]
        assert expected in message and "\n" not in message and "Traceback" not in answer.text, (name, message)
        assert "stack_trace" not in answer.json(), name
        assert _post(url, [good]).status_code == 200, name
    import requests

    body = requests.post(url + "/invocations", timeout=60, headers={"content-type": "application/json"},
                         data=b" " * (1024 * 1024 + 1))
    assert body.status_code == 413 and "at most 1048576 bytes" in body.json()["message"]

    odd = {"wide.png": _saved(Image.fromarray(wide), "PNG"),
           "rotated.jpg": _saved(Image.fromarray(_gradient()), "JPEG", exif=exif.tobytes()),
           "cmyk.jpg": _saved(Image.fromarray(_gradient()).convert("CMYK"), "JPEG"),
           "phone.mpo": _saved(Image.fromarray(_gradient()), "MPO", save_all=True,
                               append_images=[Image.new("RGB", (40, 24))])}
    answer = _post(url, [_b64(data) for data in odd.values()])
    assert answer.status_code == 200, answer.text[:500]
    folder = tmp_path / "odd"
    folder.mkdir()
    for name, data in odd.items():
        (folder / (name.replace(".mpo", ".jpg"))).write_bytes(data)
    result = run_main("predict", f"run={trained['run'].info.run_id}", f"input={folder}", "output=out",
                      f"tracking.uri={trained['uri']}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    for name, prediction in zip(odd, answer.json()["predictions"]):
        mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(prediction["mask"]))))
        expected = np.asarray(Image.open(tmp_path / "out" / (Path(name).stem + ".png")))
        assert mask.shape == ((40, 24) if name == "rotated.jpg" else (24, 40)), name
        assert np.array_equal(mask, expected), name
    assert sorted(_worker_pids(server["pid"])) == workers
