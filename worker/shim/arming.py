"""Which webhook endpoints are live, checked once at start: armed by a key, or knowingly left unsigned.

An endpoint is served only when its provider has a key (or token) configured, or when the operator names the
provider in ``IMS_WORKER_SHIM_ALLOW_UNSIGNED``; any other endpoint answers 404. The shim refuses to start
(``ConfigurationError``, exit 2) when no endpoint is live, when a key is empty after trimming (``" , "``,
a trailing comma) or a known placeholder (``change-me``...), when an unknown provider is named, or when a
network in ``IMS_WORKER_SHIM_ALLOWED_NETWORKS`` is not a CIDR. Short or low-variety keys are only warned
about: the providers allow them (IMS keys are at most 32 characters; its documentation's example key has 7).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from worker.errors import ConfigurationError
from worker.providers import ProviderSpec, active, load
from worker.settings import Settings
from worker.settings.placeholders import is_placeholder

STRONG_KEY_LENGTH = 16
STRONG_KEY_DISTINCT = 8


class NothingArmed(ConfigurationError):
    """No endpoint would be served: the shim does not start (``ims-worker run`` runs without it)."""


@dataclass(frozen=True)
class Arming:
    """The outcome of the start-up check."""

    armed: tuple[str, ...]  # providers with a key: signatures verified
    unsigned: tuple[str, ...]  # providers named in IMS_WORKER_SHIM_ALLOW_UNSIGNED
    weak: tuple[str, ...]  # one line per short or low-variety key (no key value in it)
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    def live(self, name: str) -> bool:
        return name in self.armed or name in self.unsigned


def _weakness(key: str) -> str | None:
    if len(key) < STRONG_KEY_LENGTH:
        return f"short ({len(key)} characters, {STRONG_KEY_LENGTH} or more recommended)"
    if len(set(key)) < STRONG_KEY_DISTINCT:
        return f"low in variety ({len(set(key))} distinct characters)"
    return None


def _check_keys(spec: ProviderSpec, settings: Settings) -> list[str]:
    weak = []
    keys = [key.get_secret_value() for key in spec.keys(settings)]
    for number, key in enumerate(keys, start=1):
        where = f"{spec.key_variable} (key {number} of {len(keys)})"
        if not key.strip():
            raise ConfigurationError(f"{where} is empty: remove the stray comma or set the real key")
        if is_placeholder(key):
            raise ConfigurationError(f"{where} is a placeholder ({key.strip()!r}), not a real key")
        why = _weakness(key.strip())
        if why is not None:
            weak.append(f"{where} is {why}")
    return weak


def check(settings: Settings) -> Arming:
    """Check the webhook keys and opt-ins of ``settings``; ``ConfigurationError`` says what to fix."""
    load(settings)  # plugin providers first: they may be armed too
    specs = active(settings)
    names = {spec.name for spec in specs}
    unknown = [name for name in settings.shim_allow_unsigned if name not in names]
    if unknown:
        raise ConfigurationError(
            f"IMS_WORKER_SHIM_ALLOW_UNSIGNED names unknown provider(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(names))}"
        )
    networks = []
    for text in settings.shim_allowed_networks:
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ConfigurationError(f"IMS_WORKER_SHIM_ALLOWED_NETWORKS: {exc}") from None
    weak: list[str] = []
    armed = []
    for spec in specs:
        weak += _check_keys(spec, settings)
        if spec.keys(settings):
            armed.append(spec.name)
    unsigned = tuple(name for name in dict.fromkeys(settings.shim_allow_unsigned) if name in names)
    if not armed and not unsigned:
        variables = ", ".join(spec.key_variable for spec in specs)
        raise NothingArmed(
            f"no webhook endpoint is armed: set at least one key ({variables}), or name a provider in "
            "IMS_WORKER_SHIM_ALLOW_UNSIGNED to accept its unsigned callbacks knowingly"
        )
    return Arming(tuple(armed), unsigned, tuple(weak), tuple(networks))
