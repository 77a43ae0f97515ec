"""The shim's edge decisions beyond signatures: the unsigned opt-in and authenticated-but-invalid requests.

``announce`` shouts the configuration at start (weak keys, providers accepted unsigned); ``unsigned`` lets
an unsigned request through only from the allowed networks and counts it; ``dead_letter`` keeps an
authenticated request that failed to parse or validate and answers 200 so the provider stops retrying.
"""

from __future__ import annotations

import orjson
import structlog

from worker.errors import InvalidPayload
from worker.settings import Settings
from worker.shim.answers import Answer, Trace
from worker.shim.arming import Arming
from worker.shim.errors import BadRequest, Forbidden, ShimError
from worker.shim.metrics import ShimMetrics
from worker.shim.network import allowed, client_address
from worker.shim.providers import Provider
from worker.shim.rejects import RejectStore
from worker.shim.types import Scope

log = structlog.get_logger(__name__)

_TENCENT_DEAD_LETTERED = b'{"code":0,"dead_lettered":true}'
# Parse failures of the body (the other BadRequest codes are about the request, not the body).
_BODY_ERRORS = frozenset({"invalid_json", "invalid_form"})


class Intake:
    def __init__(self, settings: Settings, arming: Arming, metrics: ShimMetrics) -> None:
        self.arming = arming
        self.metrics = metrics
        self._hops = settings.shim_trusted_proxy_hops
        self._rejects = RejectStore(settings)

    def announce(self) -> None:
        for line in self.arming.weak:
            log.warning("shim.auth.weak_key", detail=line)
        for name in self.arming.unsigned:
            log.warning(
                "shim.auth.UNSIGNED_ACCEPTED",
                provider=name,
                networks=[str(n) for n in self.arming.networks] or "any",
                detail=f"IMS_WORKER_SHIM_ALLOW_UNSIGNED: unsigned requests from {name} are ACCEPTED without "
                "any authentication",
            )

    def endpoint_modes(self, providers: dict[str, Provider]) -> dict[str, str]:
        """Live endpoint -> how it authenticates, for the start-up line (the only endpoints served)."""
        modes = {}
        for path, provider in sorted(providers.items()):
            name = provider.source
            if name not in self.arming.unsigned:
                modes[path] = "signed"
            else:
                verified = " (signed ones verified)" if name in self.arming.armed else ""
                modes[path] = "UNSIGNED ACCEPTED" + verified
        return modes

    def unsigned(self, provider: Provider, scope: Scope, headers: dict[str, str]) -> None:
        """An unsigned request to a provider the operator opted in: only from the allowed networks."""
        address = client_address(scope, headers, self._hops)
        if not allowed(address, self.arming.networks):
            self.metrics.unsigned(provider.source, "refused")
            raise Forbidden(
                "unsigned requests are accepted only from the configured networks", code="network_not_allowed"
            )
        self.metrics.unsigned(provider.source, "accepted")

    @staticmethod
    def keeps(exc: Exception, *, authenticated: bool) -> bool:
        """Whether a parse or validation failure is kept as a dead letter (only after authentication)."""
        if isinstance(exc, BadRequest):
            return authenticated and exc.code in _BODY_ERRORS
        return authenticated and isinstance(exc, InvalidPayload)

    async def dead_letter(self, provider: Provider, raw: bytes, exc: Exception, trace: Trace) -> Answer:
        """Keep an authenticated request that cannot be parsed or validated; answer so retries stop."""
        reason = exc.detail if isinstance(exc, ShimError) else str(exc)
        new = await self._rejects.add(raw, provider.source, reason, trace.request_id)
        self.metrics.dead_lettered(provider.source, new)
        trace.error = "dead_lettered"
        log.warning(
            "shim.dead_lettered", request_id=trace.request_id, provider=provider.source, new=new, error=reason
        )
        if provider.tencent_answer:
            return Answer(200, _TENCENT_DEAD_LETTERED)
        body = {"request_id": trace.request_id, "dead_lettered": True, "detail": reason, "events": []}
        return Answer(200, orjson.dumps(body))

    def close(self) -> None:
        self._rejects.close()
