"""The naive webhook baseline: a FastAPI tutorial endpoint that awaits ``request.json()`` and calls Celery
``send_task`` per request (a blocking broker call inside the event loop, as the tutorials write it).

No signature check, no dedupe: it does strictly less than the shim. Served by one uvicorn process:
``uvicorn bench.baselines.naive_shim:app``; the broker URL comes from ``BENCH_BROKER_URL``.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from fastapi import FastAPI, Request

app = FastAPI()
celery_app = Celery("naive", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"))


@app.post("/webhooks/{provider:path}")
async def webhook(provider: str, request: Request) -> dict[str, Any]:
    payload = await request.json()
    celery_app.send_task(f"naive.{provider.replace('/', '.')}", args=[payload], queue="naive")
    return {"ok": True}
