"""A local stand-in for the ECS instance metadata service (alibabacloud-credentials' ECS RAM role provider).

The provider always calls ``http://100.100.100.200`` (plain HTTP) and honours ``HTTP_PROXY``: a proxied
request names the absolute URL, so this server, given as the proxy, answers as the metadata service does:
``PUT /latest/api/token`` (IMDSv2 token), ``GET /latest/meta-data/ram/security-credentials/`` (the role name)
and ``GET .../security-credentials/<role>`` (STS credentials, here the emulator's rotating ones).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from worker.devtools.mns_emulator import MnsEmulator

METADATA_HOST = "100.100.100.200"
ROLE = "ims-worker-consumer"
CREDENTIALS_PATH = "/latest/meta-data/ram/security-credentials/"
IMDS_TOKEN = "standin-imds-token"


@dataclass
class MetadataStandIn:
    env: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, absolute URL, IMDS token)


def _handler(standin: MetadataStandIn, emulator: MnsEmulator) -> Any:
    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self._record()
            if urlsplit(self.path).path == "/latest/api/token":
                self._send(200, IMDS_TOKEN.encode())
            else:
                self._send(404, b"")

        def do_GET(self) -> None:
            self._record()
            url = urlsplit(self.path)
            if url.hostname != METADATA_HOST or self.headers.get("X-aliyun-ecs-metadata-token") != IMDS_TOKEN:
                self._send(403, b"")
            elif url.path == CREDENTIALS_PATH:
                self._send(200, ROLE.encode())
            elif url.path == CREDENTIALS_PATH + ROLE:
                answer = {**emulator.sts.credentials_uri(), "LastUpdated": "2026-01-01T00:00:00Z"}
                self._send(200, json.dumps(answer).encode())
            else:
                self._send(404, b"")

        def _record(self) -> None:
            token = self.headers.get("X-aliyun-ecs-metadata-token", "")
            standin.requests.append((self.command, self.path, token))

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def metadata_standin(emulator: MnsEmulator) -> Iterator[MetadataStandIn]:
    standin = MetadataStandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(standin, emulator))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    standin.env = {"HTTP_PROXY": f"http://127.0.0.1:{server.server_address[1]}"}
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
