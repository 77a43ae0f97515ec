"""MNS refusals in operator language: one line each, saying what is wrong and what to change.

Codes and statuses from the MNS error-code table (help.aliyun.com/document_detail/27501.html). The table lists
no code for an expired or unknown STS token; ``SecurityTokenExpired`` and ``InvalidSecurityToken`` are the
codes Alibaba Cloud's OSS answers for them, and they are treated like ``InvalidAccessKeyId`` (what a key
unknown to the service gets) wherever the code matters.
RAM actions and resources from the MNS RAM authorization table: ``mns:ReceiveMessage`` also covers
BatchReceiveMessage, ``mns:DeleteMessage`` BatchDeleteMessage, ``mns:SendMessage`` BatchSendMessage.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from worker.mns.credentials import credentials_for
from worker.redact import redact_text
from worker.settings import Settings

# The codes MNS answers when the credentials themselves were refused: with refreshable credentials a fresh
# fetch can fix them; with credentials from settings only the operator can.
TOKEN_CODES = frozenset({"SecurityTokenExpired", "InvalidSecurityToken", "InvalidAccessKeyId"})
MAX_SKEW_SECONDS = 15 * 60

# SDK operation -> (RAM action, the resource it needs, relative to the queue's ARN)
RAM_ACTIONS = {
    "GetQueueAttributes": ("mns:GetQueueAttributes", ""),
    "BatchReceiveMessage": ("mns:ReceiveMessage", "/messages"),
    "ReceiveMessage": ("mns:ReceiveMessage", "/messages"),
    "BatchDeleteMessage": ("mns:DeleteMessage", "/messages"),
    "DeleteMessage": ("mns:DeleteMessage", "/messages"),
    "BatchSendMessage": ("mns:SendMessage", "/messages"),
    "SendMessage": ("mns:SendMessage", "/messages"),
}
# https://<account id>.mns.<region>.aliyuncs.com (also -internal / -vpc forms)
_ENDPOINT = re.compile(
    r"^(?P<account>\d+)\.mns\.(?P<region>[a-z0-9-]+?)(?:-internal(?:-vpc)?)?\.aliyuncs\.com$"
)


def region_and_account(endpoint: str) -> tuple[str, str]:
    """``https://123.mns.cn-hangzhou.aliyuncs.com`` -> ("cn-hangzhou", "123"); ("*", "*") otherwise."""
    match = _ENDPOINT.match(urlsplit(endpoint).hostname or "")
    return (match["region"], match["account"]) if match else ("*", "*")


def queue_arn(endpoint: str, queue: str, suffix: str = "") -> str:
    region, account = region_and_account(endpoint)
    return f"acs:mns:{region}:{account}:/queues/{queue}{suffix}"


def skew_seconds(request_date: str | None, server_date: str | None) -> float | None:
    """How far this machine's clock is from the server's (positive: ours is ahead)."""
    try:
        ours = parsedate_to_datetime(request_date or "").timestamp()
        theirs = parsedate_to_datetime(server_date or "").timestamp()
    except (TypeError, ValueError):
        return None
    return ours - theirs


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


@dataclass(frozen=True)
class _Refusal:
    exc: BaseException
    code: str
    queue: str
    endpoint: str
    operation: str
    source: str
    static_token: bool

    @property
    def key(self) -> str:
        return f"AccessKey {_masked(str(getattr(self.exc, 'key_id', '') or ''))} from {self.source}"


def explain(
    exc: BaseException, *, queue: str, endpoint: str, operation: str, source: str, static_token: bool = False
) -> str:
    """One line for an MNS error met while doing ``operation`` on ``queue``; never holds a secret."""
    code = str(getattr(exc, "type", "") or type(exc).__name__)
    refusal = _Refusal(exc, code, queue, endpoint, operation, source, static_token)
    describe = _LINES.get(code)
    if describe is not None:
        line = describe(refusal)
    elif code == "NetWorkException":
        detail = " ".join(str(getattr(exc, "message", "")).split())[:200]
        line = (
            f"cannot reach MNS at {endpoint} ({detail}): check IMS_WORKER_MNS_ENDPOINT (a queue's endpoint "
            "is https://<account id>.mns.<region>.aliyuncs.com, in the queue's region), DNS and the network"
        )
    else:
        message = " ".join(str(getattr(exc, "message", exc)).split())[:200]
        line = f"MNS answered {code} for {operation} on queue {queue!r} at {endpoint}: {message}"
    return redact_text(line)


def _access_denied(r: _Refusal) -> str:
    action, suffix = RAM_ACTIONS.get(r.operation, (f"mns:{r.operation}", ""))
    return (
        f"MNS denied {action} on {queue_arn(r.endpoint, r.queue, suffix)} (AccessDenied) to the RAM identity "
        f"of {r.key}: grant it the least-privilege policy in deploy/README.md (RAM console > the user or "
        "role > Grant Permission)"
    )


def _queue_not_exist(r: _Refusal) -> str:
    region, account = region_and_account(r.endpoint)
    return (
        f"queue {r.queue!r} does not exist (QueueNotExist) at {r.endpoint} (region {region}, account "
        f"{account}): check "
        "IMS_WORKER_MNS_QUEUES for the name and IMS_WORKER_MNS_ENDPOINT for the queue's region and account "
        "(the MNS console shows a queue's endpoint)"
    )


def _signature(r: _Refusal) -> str:
    return (
        f"MNS rejected the signature of {r.key} (SignatureDoesNotMatch): the AccessKey secret is not the one "
        "of that AccessKey id (check IMS_WORKER_MNS_ACCESS_KEY_SECRET or the credentials source), or a proxy "
        "altered the request"
    )


def _time_skew(r: _Refusal) -> str:
    skew = skew_seconds(getattr(r.exc, "request_date", None), getattr(r.exc, "server_date", None))
    if skew is None:
        how_far = "this machine's clock is off"
    else:
        how_far = f"this machine's clock is {_duration(skew)} {'ahead of' if skew > 0 else 'behind'} MNS's"
    return (
        f"MNS refused the request as expired ({r.code}): {how_far} and MNS accepts at most "
        f"{MAX_SKEW_SECONDS // 60} min; synchronise the clock (chrony/NTP)"
    )


def _token(r: _Refusal) -> str:
    if r.static_token:
        return (
            f"MNS refused the STS token in IMS_WORKER_MNS_SECURITY_TOKEN ({r.code}): STS tokens expire (1 h "
            "by default, 12 h at most); unset IMS_WORKER_MNS_ACCESS_KEY_ID, IMS_WORKER_MNS_ACCESS_KEY_SECRET "
            "and IMS_WORKER_MNS_SECURITY_TOKEN so the default chain (RRSA, ECS RAM role, credentials URI) "
            "refreshes them"
        )
    if r.code == "InvalidAccessKeyId":
        return (
            f"MNS does not know {r.key} (InvalidAccessKeyId): it was deleted, disabled or mistyped; check it "
            "in the RAM console"
        )
    return (
        f"MNS refused the STS token of {r.key} ({r.code}) even with freshly fetched credentials: the "
        "credentials source hands out expired or revoked tokens"
    )


_LINES: dict[str, Callable[[_Refusal], str]] = {
    "AccessDenied": _access_denied,
    "QueueNotExist": _queue_not_exist,
    "SignatureDoesNotMatch": _signature,
    "TimeExpired": _time_skew,
    "RequestTimeTooSkewed": _time_skew,
    **dict.fromkeys(TOKEN_CODES, _token),
}


def _masked(key_id: str) -> str:
    """An AccessKey id shown the way the console does: enough to recognise it, not to use it."""
    if not key_id:
        return "(unknown)"
    return key_id if len(key_id) <= 8 else f"{key_id[:4]}****{key_id[-4:]}"


def explain_for(settings: Settings, exc: BaseException, *, queue: str, operation: str) -> str:
    """``explain`` with the endpoint and credentials source of ``settings``."""
    credentials = credentials_for(settings)
    return explain(
        exc,
        queue=queue,
        endpoint=settings.mns_endpoint or "",
        operation=operation,
        source=credentials.label,
        static_token=credentials.static_token,
    )
