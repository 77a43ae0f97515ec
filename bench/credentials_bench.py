"""What asking for credentials before every signed MNS request costs (issue 27).

The SDK calls ``get_credentials()`` in ``build_header`` for every request; with the default chain that is our
``ChainCredentials`` around alibabacloud-credentials' cached provider. Compared in the same run with the
explicit AccessKey pair (what every request paid before).
Run: ``.venv/bin/python -m bench.credentials_bench``.
"""

from __future__ import annotations

import timeit

from alibabacloud_credentials.provider.uri import URLCredentialsProvider

from worker.devtools.mns_emulator import MnsEmulator
from worker.mns.credentials import ChainCredentials, CredentialSource, ExplicitCredentials

CALLS = 100_000
REPEATS = 5


def per_call_us(source: CredentialSource) -> float:
    source.get_credentials()  # the first call fetches
    return min(timeit.repeat(source.get_credentials, number=CALLS, repeat=REPEATS)) / CALLS * 1e6


def main() -> None:
    with MnsEmulator() as emulator:  # its credentials URI: one fetch, then the library's cache
        sources: dict[str, CredentialSource] = {
            "explicit AccessKey (settings)": ExplicitCredentials("id", "secret", ""),
            "default chain, credentials URI (cached)": ChainCredentials(
                URLCredentialsProvider(uri=emulator.credentials_uri)
            ),
        }
        for name, source in sources.items():
            print(f"{name:45} {per_call_us(source):8.2f} us per get_credentials()")


if __name__ == "__main__":
    main()
