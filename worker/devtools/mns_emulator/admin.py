"""A small JSON control API under ``/_emulator/`` (not MNS; unsigned; never subject to faults).

It lets tests and benchmarks drive an emulator that runs in another process the same way they drive an
in-process one: read queue state, change faults at runtime, create queues, preload messages.

- ``GET /_emulator/state`` -> {"queues": {name: stats}, "faults", "injected", "operations"}
- ``PUT /_emulator/faults`` {"error_rate": 0.1, ...} -> {"faults": {...}} (only the given fields change)
- ``PUT /_emulator/queues/NAME`` {"visibility_timeout": 30, ...} -> {"created": true|false}
- ``POST /_emulator/queues/NAME/messages`` {"bodies": [...], "priority": 8, "delay_seconds": 0}
  -> {"message_ids": [...]}
- ``GET /_emulator/sts/credentials`` -> the credentials-URI answer (``StsIssuer.credentials_uri``)
- ``PUT /_emulator/sts`` {"rotate_seconds": 3, "grace_seconds": 2, ...} -> {"sts": {...}, "rotations": n}
- ``POST /_emulator/sts/issue`` {"lifetime_seconds": 60} -> a temporary credential (id, secret, token)
- ``POST /_emulator/sts/expire`` -> every issued credential expires now
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

from worker.devtools.mns_emulator.errors import MnsError
from worker.devtools.mns_emulator.faults import FaultInjector
from worker.devtools.mns_emulator.http_types import Response
from worker.devtools.mns_emulator.message_ops import DEFAULT_PRIORITY, preloaded
from worker.devtools.mns_emulator.models import QueueAttributes, QueueStats
from worker.devtools.mns_emulator.service import MnsService
from worker.devtools.mns_emulator.store import Broker
from worker.devtools.mns_emulator.sts import StsIssuer

ADMIN_PREFIX = "/_emulator/"


def stats_dict(stats: QueueStats) -> dict[str, Any]:
    return {**asdict(stats), "total": stats.total}


class AdminApi:
    def __init__(self, broker: Broker, faults: FaultInjector, service: MnsService, sts: StsIssuer) -> None:
        self.broker = broker
        self.faults = faults
        self.service = service
        self.sts = sts

    def handle(self, method: str, path: str, body: bytes) -> Response:
        try:
            payload = _json_object(body)
            result = self._route(method, path[len(ADMIN_PREFIX) :].split("?", 1)[0].strip("/"), payload)
        except MnsError as exc:
            return _json(exc.status, {"error": exc.code, "message": exc.message})
        except (ValueError, TypeError) as exc:
            return _json(400, {"error": "InvalidArgument", "message": str(exc)})
        if result is None:
            return _json(404, {"error": "NotFound", "message": f"no admin route {method} {path}"})
        return _json(200, result)

    def state(self) -> dict[str, Any]:
        return {
            "queues": {name: stats_dict(s) for name, s in self.broker.stats().items()},
            "faults": self.faults.settings.as_dict(),
            "injected": dict(self.faults.injected),
            "operations": dict(self.service.operations),
        }

    def _route(self, method: str, route: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        parts = route.split("/")
        if method == "GET" and route == "state":
            return self.state()
        if parts[0] == "sts":
            return self._sts(method, route, payload)
        if method == "PUT" and route == "faults":
            changes = {k: float(v) for k, v in payload.items()}
            return {"faults": self.faults.configure(replace(self.faults.settings, **changes)).as_dict()}
        if len(parts) == 2 and parts[0] == "queues" and method == "PUT":
            attributes = QueueAttributes()._replace(**payload)
            return {"created": self.broker.create_queue(parts[1], attributes)}
        if len(parts) == 3 and parts[0] == "queues" and parts[2] == "messages" and method == "POST":
            bodies = payload.get("bodies")
            if not isinstance(bodies, list) or not all(isinstance(b, str) and b for b in bodies):
                raise ValueError("'bodies' must be a list of non-empty strings")
            priority = int(payload.get("priority", DEFAULT_PRIORITY))
            delay = int(payload.get("delay_seconds", 0))
            queue = self.broker.get(parts[1])
            batch = preloaded(bodies, queue.attributes, priority, delay)
            return {"message_ids": [mid for mid, _ in queue.send(batch)]}
        return None

    def _sts(self, method: str, route: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if method == "GET" and route == "sts/credentials":
            return self.sts.credentials_uri()
        if method == "PUT" and route == "sts":
            return {"sts": self.sts.configure(**payload), "rotations": self.sts.rotations}
        if method == "GET" and route == "sts":
            return {"sts": self.sts.settings(), "rotations": self.sts.rotations}
        if method == "POST" and route == "sts/issue":
            credential = self.sts.issue(float(payload.get("lifetime_seconds", 3600)))
            return credential.as_uri_answer(0)
        if method == "POST" and route == "sts/expire":
            return {"expired": self.sts.expire_all()}
        return None


def _json_object(body: bytes) -> dict[str, Any]:
    payload = json.loads(body) if body.strip() else {}
    if not isinstance(payload, dict):
        raise TypeError("the body must be a JSON object")
    return payload


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})
