"""A local stand-in for Alibaba Cloud STS for alibabacloud-credentials' RRSA/OIDC provider.

A TLS server (a throw-away self-signed certificate for ``localhost``, ``127.0.0.1`` and the STS host name)
answers ``AssumeRoleWithOIDC`` the way STS does, with credentials the MNS emulator issued, after checking the
role, the provider and that the token is the one in the token file.

How far the library lets it be reached (alibabacloud-credentials 1.0.12, read from its source):
- The default chain builds its OIDC provider from the environment only, and that provider always calls
  ``https://sts[-vpc].<ALIBABA_CLOUD_STS_REGION>.aliyuncs.com``: no endpoint setting. It honours
  ``HTTPS_PROXY``, so ``proxy_env`` sends the call through a CONNECT proxy to this server; but a proxied
  request verifies TLS against certifi's bundle only (Tea's TLS adapter is not used for proxies), so the
  handshake is refused there. That leg shows which provider the chain chose and what it sent.
- ``OIDCRoleArnCredentialsProvider(sts_endpoint=...)`` reaches ``endpoint`` (``localhost:PORT``) directly,
  through Tea's TLS adapter, whose context trusts ``SSL_CERT_FILE``: the whole exchange runs.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from worker.devtools.mns_emulator import MnsEmulator

STS_REGION = "cn-standin"
STS_HOST = f"sts.{STS_REGION}.aliyuncs.com"


@dataclass
class StsStandIn:
    env: dict[str, str]  # the RRSA environment ACK's webhook sets (role, provider, token file, STS region)
    endpoint: str = ""  # localhost:PORT, for OIDCRoleArnCredentialsProvider(sts_endpoint=...)
    cert_file: str = ""  # trust it with SSL_CERT_FILE
    proxy_env: dict[str, str] = field(default_factory=dict)  # HTTPS_PROXY (+ SSL_CERT_FILE) to this server
    calls: list[dict[str, str]] = field(default_factory=list)  # every AssumeRoleWithOIDC query received
    tunnels: list[str] = field(default_factory=list)  # the host:port each CONNECT asked for


def _certificate(directory: Path) -> tuple[Path, Path]:
    key, cert = directory / "sts-key.pem", directory / "sts-cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
         "-out", str(cert), "-subj", f"/CN={STS_HOST}",
         "-addext", f"subjectAltName=DNS:{STS_HOST},DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,digitalSignature"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


def _sts_handler(
    standin: StsStandIn, emulator: MnsEmulator, expected: dict[str, str], lifetime: float
) -> Any:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            query.update({k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()})
            standin.calls.append(query)
            wrong = [name for name, value in expected.items() if query.get(name) != value]
            body: dict[str, Any]
            if wrong:
                status, body = 400, {"Code": "InvalidParameter", "Message": f"wrong {', '.join(wrong)}"}
            else:
                credential = emulator.issue_temporary(lifetime).as_uri_answer(0)
                body = {
                    "RequestId": "standin",
                    "Credentials": {k: v for k, v in credential.items() if k != "Code"},
                }
                status = 200
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _proxy_handler(standin: StsStandIn, target: tuple[str, int]) -> Any:
    class Proxy(BaseHTTPRequestHandler):
        def do_CONNECT(self) -> None:  # every tunnel goes to the stand-in, whatever host was asked for
            standin.tunnels.append(self.path)
            upstream = socket.create_connection(target, timeout=10)
            self.send_response(200, "Connection established")
            self.end_headers()
            with upstream, contextlib.suppress(OSError):
                self._relay(upstream)

        def _relay(self, upstream: socket.socket) -> None:
            sockets = [self.connection, upstream]
            while True:
                readable, _, _ = select.select(sockets, [], [], 10)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Proxy


@contextlib.contextmanager
def sts_standin(emulator: MnsEmulator, workdir: Path, *, lifetime: float = 3600.0) -> Iterator[StsStandIn]:
    token_file = workdir / "oidc-token"
    token_file.write_text("eyJ.standin-oidc-token.sig")
    env = {
        "ALIBABA_CLOUD_ROLE_ARN": "acs:ram::1234567890:role/ims-worker-consumer",
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": "acs:ram::1234567890:oidc-provider/ack-rrsa-standin",
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file),
        "ALIBABA_CLOUD_STS_REGION": STS_REGION,
    }
    standin = StsStandIn(env)
    expected = {
        "Action": "AssumeRoleWithOIDC",
        "RoleArn": env["ALIBABA_CLOUD_ROLE_ARN"],
        "OIDCProviderArn": env["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"],
        "OIDCToken": token_file.read_text(),
    }
    key, cert = _certificate(workdir)
    sts = ThreadingHTTPServer(("127.0.0.1", 0), _sts_handler(standin, emulator, expected, lifetime))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    sts.socket = context.wrap_socket(sts.socket, server_side=True)
    proxy = ThreadingHTTPServer(
        ("127.0.0.1", 0), _proxy_handler(standin, ("127.0.0.1", sts.server_address[1]))
    )
    for server in (sts, proxy):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    standin.endpoint = f"localhost:{sts.server_address[1]}"
    standin.cert_file = str(cert)
    standin.proxy_env = {
        "HTTPS_PROXY": f"http://127.0.0.1:{proxy.server_address[1]}",
        "SSL_CERT_FILE": str(cert),
    }
    try:
        yield standin
    finally:
        for server in (proxy, sts):
            server.shutdown()
            server.server_close()
