"""A small HTTP proxy on 127.0.0.1 in front of a real server, that loses or delays chosen answers.

Rules match a request by method and a substring of its path, and apply to the first `times` matches:
- `drop`: the request reaches the server, which acts on it; its answer is thrown away and the client's connection
  closed (an answer lost on the way back: the client cannot know the call took effect).
- `hold`: the request waits `seconds` before it reaches the server (a slow server: the client times out and retries
  while the first call is still to be committed).
"""
from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}


@dataclass
class Rule:
    method: str
    path: str
    action: str  # "drop" or "hold"
    times: int = 1
    seconds: float = 0.0
    hits: int = 0


@dataclass
class Proxy:
    upstream_port: int
    rules: list[Rule] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every request
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def rule(self, method: str, path: str) -> Rule | None:
        with self.lock:
            self.seen.append((method, path))
            for rule in self.rules:
                if rule.method == method and rule.path in path and rule.hits < rule.times:
                    rule.hits += 1
                    return rule
        return None

    def start(self) -> Proxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rule = proxy.rule(self.command, self.path)
                if rule is not None and rule.action == "hold":
                    time.sleep(rule.seconds)
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=120)
                headers = {key: value for key, value in self.headers.items() if key.lower() not in HOP_HEADERS}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                if rule is not None and rule.action == "drop":
                    self.close_connection = True
                    self.connection.close()  # the server acted; the client hears nothing
                    return
                try:
                    self.send_response(answer.status)
                    for key, value in answer.getheaders():
                        if key.lower() not in HOP_HEADERS and key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up waiting (a held request): nobody to answer
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
