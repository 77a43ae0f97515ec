"""The HTTP webhook shim: authenticate provider callbacks, normalize them, enqueue them, answer fast.

``create_app(settings, publisher=None)`` builds the ASGI app; ``sign_request`` signs a request the way each
provider does (tests, demo, ``ims-worker send --http``); ``ENDPOINTS`` maps sources to their paths.
"""

from __future__ import annotations

from worker.shim.app import ShimApp, create_app
from worker.shim.providers import ENDPOINTS
from worker.shim.signing import SignedRequest, sign_request, source_of

__all__ = ["ENDPOINTS", "ShimApp", "SignedRequest", "create_app", "sign_request", "source_of"]
