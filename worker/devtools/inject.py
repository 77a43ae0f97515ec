"""Injecting payloads the way providers deliver them: onto an MNS queue (real SDK) or signed to the shim.

Shared by ``ims-worker send`` and the ``--demo`` of ``ims-worker run``, so the demo exercises exactly the
paths production traffic takes: the consumer's MNS receive and the shim's signature checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import urlencode, urlsplit

from mns.mns_exception import MNSExceptionBase
from mns.queue import Message, Queue

from worker.devtools.httppost import post
from worker.errors import ConfigurationError
from worker.mns.client import open_queue
from worker.mns.explain import explain_for
from worker.providers import get as get_provider
from worker.settings import Settings
from worker.shim.signing import sign_request, source_of

MNS_BATCH = 16  # the most one BatchSendMessage takes
# MNS refuses a message body over 64 KiB (after encoding); checked before sending so the error says so.
MNS_MAX_MESSAGE_BYTES = 65536


class MessageTooLarge(ValueError):
    """A body MNS would refuse for its size; raised before anything is sent."""


def encoded_size(body: str, *, base64: bool) -> int:
    raw = len(body.encode("utf-8"))
    return 4 * ((raw + 2) // 3) if base64 else raw


class Answer(NamedTuple):
    """What the shim answered one POST."""

    url: str
    status: int
    body: str


def send_to_mns(
    settings: Settings, queue_name: str, bodies: Sequence[str], *, base64: bool = False
) -> list[str]:
    """Send ``bodies`` to ``queue_name`` in batches of 16; returns the message ids.

    IMS writes plain JSON, so bodies go out as they are unless ``base64`` (what the SDK does by default, and
    what other producers may do); the consumer decodes both.
    """
    for index, body in enumerate(bodies):
        size = encoded_size(body, base64=base64)
        if size > MNS_MAX_MESSAGE_BYTES:
            raise MessageTooLarge(
                f"message {index + 1}: {size} bytes{' after base64' if base64 else ''}; MNS accepts at most "
                f"{MNS_MAX_MESSAGE_BYTES} bytes per message (64 KiB)"
            )
    queue = open_queue(settings, queue_name)
    queue.set_encoding(base64)
    ids: list[str] = []
    try:
        for start in range(0, len(bodies), MNS_BATCH):
            batch = [Message(body) for body in bodies[start : start + MNS_BATCH]]
            sent = queue.batch_send_message(batch)
            ids.extend(str(message.message_id) for message in sent)
    except MNSExceptionBase as exc:
        line = explain_for(settings, exc, queue=queue_name, operation="BatchSendMessage")
        raise ConfigurationError(line) from exc
    finally:
        close_queue(queue)
    return ids


def close_queue(queue: Queue) -> None:
    """Close the SDK client's keep-alive connection (the SDK never does)."""
    queue.mns_client.http.conn.close()


def endpoint_url(base_or_endpoint: str, source: str) -> str:
    """A bare base URL (``http://host:8080``) gets the provider's route; a URL with a path is kept."""
    parts = urlsplit(base_or_endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"--http needs an http(s) URL, got {base_or_endpoint!r}")
    if parts.path in ("", "/"):
        return base_or_endpoint.rstrip("/") + get_provider(source_of(source)).path
    return base_or_endpoint


def post_webhook(
    settings: Settings, url: str, provider: str, body: bytes, *, timeout: float = 10.0
) -> Answer:
    """POST ``body`` to the shim signed as ``provider`` would sign it, with the configured keys.

    Any HTTP answer is returned (the caller decides what is a failure); an unreachable shim raises OSError.
    """
    source = source_of(provider)
    target = endpoint_url(url, source)
    parts = urlsplit(target)
    # Without a configured public URL the shim checks the signature against the Host it was called on.
    public_url = settings.shim_public_url or f"{parts.scheme}://{parts.netloc}"
    signed = sign_request(source, body, settings, public_url=public_url)
    if signed.query:
        target += ("&" if parts.query else "?") + urlencode(signed.query)
    shown = redact_query(target)  # the caster token travels in the query string
    status, text = post(target, signed.body, signed.headers, timeout=timeout)
    return Answer(shown, status, text)


def redact_query(url: str) -> str:
    """The URL without its query string (the caster token travels there)."""
    return url.split("?", 1)[0]
