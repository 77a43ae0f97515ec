"""The ceiling: a bare Starlette endpoint doing one async Redis ``LPUSH`` of the raw body, nothing else.

No parsing, no signature, no dedupe: what any Python ASGI receiver on this machine can at best do.
``uvicorn bench.baselines.ceiling:app``; Redis URL from ``BENCH_BROKER_URL``.
"""

from __future__ import annotations

import os

import redis.asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_client = redis.asyncio.Redis.from_url(os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"))


async def webhook(request: Request) -> Response:
    await _client.lpush("ceiling", await request.body())
    return Response(b'{"ok":true}', media_type="application/json")


app = Starlette(routes=[Route("/webhooks/{provider:path}", webhook, methods=["POST"])])
