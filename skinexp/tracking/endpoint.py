"""The ASGI app `skinexp serve` runs under uvicorn: MLflow's own scoring server for one model
(`mlflow.pyfunc.scoring_server`, what `mlflow models serve` runs), behind a cap on the request body.

MLflow's server reads a whole body into memory and parses it before the model sees a row; this cap answers
HTTP 413 with one line first. The row and pixel caps live in the served model (`segmenter.py`).
"""
from __future__ import annotations

import json
import os

MAX_BODY_ENV = "SKINEXP_SERVE_MAX_BODY_BYTES"
MODEL_ENV = "SKINEXP_SERVE_MODEL"  # the model's local folder
MAX_BODY = 64 * 1024 * 1024  # 16 rows of a 3 MB JPEG in base64 fit four times over


class BodyLimit:
    """ASGI middleware: a POST body over `limit` bytes (by Content-Length, or as it streams in) is answered 413
    with `{"error_code": ..., "message": <one line>}`, the shape MLflow's errors have; others pass unchanged."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send, int(declared))
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await self._refuse(send, f"at least {len(body)}")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _refuse(self, send, size) -> None:
        line = (f"a request body may hold at most {self.limit} bytes ({MAX_BODY_ENV}); send fewer or smaller images "
                f"per request. Received: {size} bytes")
        content = json.dumps({"error_code": "INVALID_PARAMETER_VALUE", "message": line}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(content)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": content})


def body_limit() -> int:
    text = os.environ.get(MAX_BODY_ENV, "")
    return int(text) if text.isdigit() and int(text) > 0 else MAX_BODY


def create_app():
    """uvicorn's `--factory` entry: the model in SKINEXP_SERVE_MODEL, served with the body cap."""
    from mlflow.pyfunc import scoring_server

    model = scoring_server.load_model_with_mlflow_config(os.environ[MODEL_ENV])
    return BodyLimit(scoring_server.init(model), body_limit())
