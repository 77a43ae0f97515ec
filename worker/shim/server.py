"""The shim as served: the app behind the in-flight body budget, on the bounded uvicorn protocol.

``worker.boundedhttp`` holds the protocol (connection cap, header and body deadlines, lingering close);
``worker.shim.inflight`` the body budget. ``ims-worker shim`` uses ``bounded`` with one process and
``create_app_from_environment`` as the factory of each ``--workers`` process.
"""

from __future__ import annotations

from worker import boundedhttp
from worker.settings import Settings
from worker.shim.inflight import BodyBudget, BoundedBodies
from worker.shim.types import ASGIApp


def bounded(app: ASGIApp, settings: Settings) -> ASGIApp:
    """``app`` behind the in-flight body budget of ``settings``."""
    budget = BodyBudget(settings.shim_max_inflight_body_bytes)
    return BoundedBodies(app, budget, max_body=settings.shim_max_body_bytes)


def create_app_from_environment() -> ASGIApp:
    """uvicorn factory for ``--workers N``: each process builds the shim with its limits and budget."""
    from worker.shim.app import create_app_from_environment as create_shim  # noqa: PLC0415

    shim = create_shim()
    boundedhttp.configure(shim.settings)
    return bounded(shim, shim.settings)
