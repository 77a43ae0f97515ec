"""What ``worker.boundedhttp``'s protocol costs per request against uvicorn's own httptools protocol.

In process, without sockets: a signed-callback-sized POST (headers and body in one read, as most arrive) is
fed to each protocol's ``data_received`` on a uvloop loop, and a minimal ASGI app reads the body and answers
200. The figure is the process CPU per request; the two protocols alternate in rounds so that a busy moment
hits both. The shim benchmark (``bench/shim_bench.py``) prices the same protocol with the whole app, over
real connections. Run: ``.venv/bin/python -m bench.protocol_bench``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from worker.boundedhttp import CONFIG_ATTRIBUTE, BoundedHttpToolsProtocol, ConnectionLimits

REQUESTS = 15_000
WARMUP = 500
ROUNDS = 15
BODY = b'{"EventType":"ProduceMediaComplete","MessageBody":{"Status":"Success"}}' + b" " * 600
REQUEST = (
    b"POST /webhooks/rtc HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\nContent-Type: application/json\r\n"
    b"Ali-Rtc-Signature: 0123456789abcdef\r\nAli-Rtc-Timestamp: 1733550000\r\nX-Request-Id: r1\r\n"
    b"Content-Length: %d\r\n\r\n" % len(BODY)
) + BODY


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


class Transport(asyncio.Transport):
    """Takes the answers; the second write of each (its body) completes the request."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.answered: asyncio.Future[None] | None = None
        self.closing = False

    def write(self, data: Any) -> None:
        self.writes += 1
        if self.writes % 2 == 0 and self.answered is not None and not self.answered.done():
            self.answered.set_result(None)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def per_request_us(protocol_class: type[HttpToolsProtocol]) -> float:
    config = Config(app, http=protocol_class, lifespan="off", log_config=None, access_log=False)
    setattr(config, CONFIG_ATTRIBUTE, ConnectionLimits())
    config.load()
    protocol = protocol_class(config, ServerState(), {})
    transport = Transport()
    protocol.connection_made(transport)
    loop = asyncio.get_running_loop()

    async def one() -> None:
        transport.answered = loop.create_future()
        protocol.data_received(REQUEST)
        await transport.answered

    for _ in range(WARMUP):
        await one()
    started = time.process_time()
    for _ in range(REQUESTS):
        await one()
    return (time.process_time() - started) / REQUESTS * 1e6


def main() -> None:
    protocols: dict[str, type[HttpToolsProtocol]] = {
        "uvicorn httptools": HttpToolsProtocol,
        "worker.boundedhttp": BoundedHttpToolsProtocol,
    }
    figures: dict[str, list[float]] = {name: [] for name in protocols}
    for _ in range(ROUNDS):
        for name, protocol_class in protocols.items():
            loop = uvloop.new_event_loop()
            figures[name].append(loop.run_until_complete(per_request_us(protocol_class)))
            loop.close()
    print(f"CPU us per request, {ROUNDS} rounds of {REQUESTS:,} requests (min / median):")
    for name, values in figures.items():
        print(f"  {name:20s} {min(values):6.1f} / {statistics.median(values):6.1f}")
    stock, bounded = (statistics.median(v) for v in figures.values())
    print(f"  bounded - stock: {bounded - stock:+.1f} us per request (medians)")


if __name__ == "__main__":
    main()
