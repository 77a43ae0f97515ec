"""Where an unsigned request may come from: the source-network allowlist for the unsigned opt-in.

The client address is the TCP peer, unless the operator says how many proxies of their own sit in front
(``IMS_WORKER_SHIM_TRUSTED_PROXY_HOPS``): each appends the address it received from to ``X-Forwarded-For``, so
with N trusted hops the client is the N-th entry from the right. Entries left of it are the client's own
claims and are never trusted. A request with fewer entries than trusted hops did not come through the
proxies and has no trustworthy address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def request_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's headers by lower-case name; a field sent on several lines is joined in order with ", "
    (RFC 9110, 5.3): with a dict alone the last ``X-Forwarded-For`` line would win, and a client could put
    its own claim where a trusted proxy's entry is counted."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def client_address(scope: Mapping[str, Any], headers: Mapping[str, str], hops: int) -> Address | None:
    """The request's client address as far as it can be trusted; None when it cannot be determined."""
    if hops == 0:
        client = scope.get("client")
        text = client[0] if client else None
    else:
        forwarded = [part.strip() for part in headers.get("x-forwarded-for", "").split(",") if part.strip()]
        text = forwarded[-hops] if len(forwarded) >= hops else None
    if text is None:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def allowed(address: Address | None, networks: Sequence[Network]) -> bool:
    """No networks configured: any address; otherwise the address must lie in one of them."""
    if not networks:
        return True
    return address is not None and any(address in network for network in networks)
