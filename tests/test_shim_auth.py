"""The pure authentication functions, one scheme at a time, and the signing helper that mirrors them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from worker.providers import get
from worker.settings import load_settings
from worker.shim import auth
from worker.shim.errors import AuthFailure
from worker.shim.signing import sign_request, source_of

NOW = 1_700_000_000.0
WINDOW = 300
KEY = b"key-one"
OTHER = b"key-two"
URL = "https://hooks.example.com/webhooks/ims"
HOST = "hooks.example.com"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


HeaderCheck = Callable[..., None]


def verify_ims(ts: str | None, sig: str | None, *, callback_url: str, keys: list[bytes], now: float) -> None:
    auth.verify_signed(get("ims").auth, ts, sig, prefix=callback_url, keys=keys, now=now, window=WINDOW)


def ims(ts: str | None, sig: str | None, keys: list[bytes] | None = None, now: float = NOW) -> None:
    verify_ims(ts, sig, callback_url=URL, keys=keys or [KEY], now=now)


def live(ts: str | None, sig: str | None, keys: list[bytes] | None = None, now: float = NOW) -> None:
    auth.verify_signed(
        get("live.record").auth, ts, sig, prefix=HOST, keys=keys or [KEY], now=now, window=WINDOW
    )


def rtc(ts: str | None, sig: str | None, keys: list[bytes] | None = None, now: float = NOW) -> None:
    auth.verify_signed(get("rtc").auth, ts, sig, prefix=HOST, keys=keys or [KEY], now=now, window=WINDOW)


# (check, what the provider puts before "|{timestamp}|{key}")
HEADER_SCHEMES = [
    pytest.param(ims, URL, id="ims"),
    pytest.param(live, HOST, id="live"),
    pytest.param(rtc, HOST, id="rtc"),
]


def reason(call: Callable[[], None]) -> str:
    with pytest.raises(AuthFailure) as caught:
        call()
    assert caught.value.status == 401
    return caught.value.code


@pytest.mark.parametrize(("check", "prefix"), HEADER_SCHEMES)
class TestHeaderSchemes:
    def test_valid_signature_passes(self, check: HeaderCheck, prefix: str) -> None:
        ts = str(int(NOW))
        check(ts, md5(f"{prefix}|{ts}|key-one"))

    def test_upper_case_hex_passes(self, check: HeaderCheck, prefix: str) -> None:
        ts = str(int(NOW))
        check(ts, md5(f"{prefix}|{ts}|key-one").upper())

    def test_millisecond_timestamp_is_understood(self, check: HeaderCheck, prefix: str) -> None:
        ts = str(int(NOW * 1000))
        check(ts, md5(f"{prefix}|{ts}|key-one"))

    def test_wrong_key_is_refused(self, check: HeaderCheck, prefix: str) -> None:
        ts = str(int(NOW))
        assert reason(lambda: check(ts, md5(f"{prefix}|{ts}|key-two"))) == "bad_signature"

    def test_signature_of_another_timestamp_is_refused(self, check: HeaderCheck, prefix: str) -> None:
        ts = str(int(NOW))
        assert reason(lambda: check(ts, md5(f"{prefix}|{int(NOW) - 1}|key-one"))) == "bad_signature"

    def test_signature_for_another_url_or_host_is_refused(self, check: HeaderCheck, prefix: str) -> None:
        ts = str(int(NOW))
        assert reason(lambda: check(ts, md5(f"evil.example.com|{ts}|key-one"))) == "bad_signature"

    def test_garbage_and_non_ascii_signatures_are_refused(self, check: HeaderCheck, prefix: str) -> None:
        ts = str(int(NOW))
        assert reason(lambda: check(ts, "zz")) == "bad_signature"
        assert reason(lambda: check(ts, "é" * 32)) == "bad_signature"
        assert reason(lambda: check(ts, "\ud800")) == "bad_signature"

    def test_stale_timestamp_is_refused(self, check: HeaderCheck, prefix: str) -> None:
        ts = str(int(NOW) - WINDOW - 1)
        assert reason(lambda: check(ts, md5(f"{prefix}|{ts}|key-one"))) == "stale"

    def test_edge_of_window_passes(self, check: HeaderCheck, prefix: str) -> None:
        for ts in (str(int(NOW) - WINDOW), str(int(NOW) + WINDOW)):
            check(ts, md5(f"{prefix}|{ts}|key-one"))

    def test_future_timestamp_is_refused(self, check: HeaderCheck, prefix: str) -> None:
        ts = str(int(NOW) + WINDOW + 1)
        assert reason(lambda: check(ts, md5(f"{prefix}|{ts}|key-one"))) == "future"

    @pytest.mark.parametrize("ts", ["abc", "-5", "1.5", "", " ", "1" * 17, "١٢٣"])
    def test_malformed_or_missing_timestamp_is_refused(
        self, check: HeaderCheck, prefix: str, ts: str
    ) -> None:
        assert reason(lambda: check(ts, md5(f"{prefix}|{ts}|key-one"))) in ("malformed", "missing")

    def test_missing_headers_are_refused(self, check: HeaderCheck, prefix: str) -> None:
        assert reason(lambda: check(None, "x")) == "missing"
        assert reason(lambda: check(str(int(NOW)), None)) == "missing"
        assert reason(lambda: check(str(int(NOW)), "")) == "missing"

    def test_both_keys_are_accepted_during_rotation(self, check: HeaderCheck, prefix: str) -> None:
        ts = str(int(NOW))
        for key in ("key-one", "key-two"):
            check(ts, md5(f"{prefix}|{ts}|{key}"), keys=[KEY, OTHER])
        assert (
            reason(lambda: check(ts, md5(f"{prefix}|{ts}|key-three"), keys=[KEY, OTHER])) == "bad_signature"
        )


def test_no_keys_refuses_everything() -> None:
    """Fail closed: without a key nothing verifies (the shim does not even serve such an endpoint)."""
    checks = [
        lambda: verify_ims(None, None, callback_url=URL, keys=[], now=NOW),
        lambda: auth.verify_signed(get("rtc").auth, None, None, prefix=HOST, keys=[], now=NOW, window=WINDOW),
        lambda: auth.verify_tencent(None, None, keys=[], now=NOW, window=WINDOW),
        lambda: auth.verify_token(None, tokens=[]),
    ]
    assert [reason(check) for check in checks] == ["not_armed"] * 4


def tencent(t: object, sign: object, keys: list[bytes] | None = None) -> None:
    auth.verify_tencent(t, sign, keys=keys or [KEY], now=NOW, window=WINDOW)


class TestTencent:
    expiry = int(NOW) + 600

    def test_valid_sign_passes_with_t_as_number_or_string(self) -> None:
        tencent(self.expiry, md5(f"key-one{self.expiry}"))
        tencent(str(self.expiry), md5(f"key-one{self.expiry}"))

    def test_wrong_key_is_refused(self) -> None:
        assert reason(lambda: tencent(self.expiry, md5(f"key-two{self.expiry}"))) == "bad_signature"

    def test_sign_of_another_t_is_refused(self) -> None:
        assert reason(lambda: tencent(self.expiry + 1, md5(f"key-one{self.expiry}"))) == "bad_signature"

    def test_a_passed_expiry_is_stale_with_no_window(self) -> None:
        # Tencent: "if the time specified by t has elapsed, the notification is considered invalid".
        t = int(NOW) - 1
        assert reason(lambda: tencent(t, md5(f"key-one{t}"))) == "stale"

    def test_an_expiry_of_now_passes(self) -> None:
        t = int(NOW)
        tencent(t, md5(f"key-one{t}"))

    def test_expiry_beyond_tencents_validity_is_future(self) -> None:
        t = int(NOW) + auth.TENCENT_MAX_VALIDITY_SECONDS + WINDOW + 1
        assert reason(lambda: tencent(t, md5(f"key-one{t}"))) == "future"

    @pytest.mark.parametrize(("t", "sign"), [(None, "x"), ("", "x"), (123, None), (123, "")])
    def test_missing_fields_are_refused(self, t: object, sign: object) -> None:
        assert reason(lambda: tencent(t, sign)) == "missing"

    @pytest.mark.parametrize(("t", "sign"), [(True, "x"), (1.5, "x"), ("soon", "x"), ([1], "x"), (123, 5)])
    def test_malformed_fields_are_refused(self, t: object, sign: object) -> None:
        assert reason(lambda: tencent(t, sign)) == "malformed"

    def test_rotation_accepts_both_keys(self) -> None:
        for key in ("key-one", "key-two"):
            tencent(self.expiry, md5(f"{key}{self.expiry}"), keys=[KEY, OTHER])


class TestCasterToken:
    def test_matching_token_passes_and_rotation_accepts_both(self) -> None:
        auth.verify_token("key-one", tokens=[KEY])
        auth.verify_token("key-two", tokens=[KEY, OTHER])

    def test_wrong_or_missing_token_is_refused(self) -> None:
        assert reason(lambda: auth.verify_token("key-onE", tokens=[KEY])) == "bad_token"
        assert reason(lambda: auth.verify_token("ключ", tokens=[KEY])) == "bad_token"
        assert reason(lambda: auth.verify_token(None, tokens=[KEY])) == "missing"
        assert reason(lambda: auth.verify_token("", tokens=[KEY])) == "missing"


@pytest.mark.parametrize(
    ("given", "host"),
    [
        ("https://Hooks.Example.com:8443/base", "hooks.example.com"),
        ("hooks.example.com:8080", "hooks.example.com"),
        ("http://user@10.0.0.1/x", "10.0.0.1"),
        ("http://[::1]:8080", "::1"),
        ("", ""),
    ],
)
def test_callback_host(given: str, host: str) -> None:
    assert auth.callback_host(given) == host


def test_callback_url_keeps_a_path_prefix_and_drops_a_trailing_slash() -> None:
    assert (
        auth.callback_url("https://h.example.com/prefix/", "/webhooks/ims")
        == "https://h.example.com/prefix/webhooks/ims"
    )


class TestSigningHelper:
    settings = load_settings(
        ims_callback_key="key-one",
        live_auth_key="key-one",
        rtc_app_key="key-one",
        tencent_callback_key="key-one",
        caster_token="key-one",
        shim_public_url="https://hooks.example.com",
    )

    def test_headers_verify(self) -> None:
        headers, query, body = sign_request("ims", b"{}", self.settings, now=NOW)
        ims(headers["X-ICE-TIMESTAMP"], headers["X-ICE-SIGNATURE"])
        assert query == {} and body == b"{}"
        headers, _, _ = sign_request("live-record", b"{}", self.settings, now=NOW)
        live(headers["ALI-LIVE-TIMESTAMP"], headers["ALI-LIVE-SIGNATURE"])
        headers, _, _ = sign_request("rtc", b"{}", self.settings, now=NOW)
        rtc(headers["Ali-Rtc-Timestamp"], headers["Ali-Rtc-Signature"])

    def test_tencent_writes_t_and_sign_into_the_body(self) -> None:
        _, _, body = sign_request("tencent/css", b'{"event_type": 314}', self.settings, now=NOW)
        payload = json.loads(body)
        assert payload["event_type"] == 314 and payload["t"] > NOW
        tencent(payload["t"], payload["sign"])

    def test_caster_gets_the_token_and_an_explicit_key_wins(self) -> None:
        assert sign_request("live.caster", b"{}", self.settings).query == {"token": "key-one"}
        headers, _, _ = sign_request("ims", b"{}", self.settings, key="key-two", now=NOW)
        assert reason(lambda: ims(headers["X-ICE-TIMESTAMP"], headers["X-ICE-SIGNATURE"])) == "bad_signature"

    def test_unsigned_without_keys_and_errors_are_clear(self) -> None:
        bare = load_settings()
        assert sign_request("ims", b"{}", bare).headers == {"Content-Type": "application/json"}
        assert sign_request("tencent", b"[1]", self.settings).body == b"[1]"
        with pytest.raises(ValueError, match="public_url"):
            sign_request("rtc", b"{}", bare, key="k")
        with pytest.raises(ValueError, match="unknown provider"):
            source_of("vimeo")


class TestWorkedExamples:
    """The providers' own published examples, digit for digit."""

    def test_ims_documented_example(self) -> None:
        # IMS documents md5("https://www.example.com/your/callback|1519375990|<key>") and prints a digest
        # starting c72b60894140fa98920f1279219b: it is the digest for the key "test123" (lower case).
        url, stamp = "https://www.example.com/your/callback", "1519375990"
        digest = auth.md5_hex(f"{url}|{stamp}|test123".encode()).decode()
        assert digest.startswith("c72b60894140fa98920f1279219b")
        assert not auth.md5_hex(f"{url}|{stamp}|Test123".encode()).decode().startswith("c72b6089")
        verify_ims(stamp, digest, callback_url=url, keys=[b"test123"], now=1519375990)

    def test_ims_signs_the_configured_url_with_its_query_string(self) -> None:
        url, stamp = "https://www.example.com/your/callback?tenant=a&x=1", "1519375990"
        digest = auth.md5_hex(f"{url}|{stamp}|test123".encode()).decode()
        verify_ims(stamp, digest, callback_url=url, keys=[b"test123"], now=1519375990)
        bare = "https://www.example.com/your/callback"
        assert (
            reason(lambda: verify_ims(stamp, digest, callback_url=bare, keys=[b"test123"], now=1519375990))
            == "bad_signature"
        )
