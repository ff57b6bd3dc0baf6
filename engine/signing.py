"""HMAC signatures on every HTTP body we send or accept (SPEC 6).

Header `X-DialNexa-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
"""

import hashlib
import hmac
import re
import time

from django.conf import settings

HEADER = "X-DialNexa-Signature"
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
TOLERANCE_SECONDS = 300


class BadSignature(Exception):
    pass


def sign(body: bytes, *, secret: str | None = None, timestamp: int | None = None) -> str:
    secret = secret if secret is not None else settings.DIALNEXA_WEBHOOK_SECRET
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(header: str | None, body: bytes, *, now: float | None = None) -> None:
    """Raise BadSignature unless `header` signs `body` with our secret within 5 minutes."""
    if not header:
        raise BadSignature(f"missing {HEADER} header")
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        t = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        raise BadSignature(f"malformed {HEADER} header (want t=<unix seconds>,v1=<hex>)") from None
    if not _HEX_DIGEST.fullmatch(given):
        raise BadSignature("malformed signature: v1 must be 64 hexadecimal digits")
    current = time.time() if now is None else now
    if abs(current - t) > TOLERANCE_SECONDS:
        raise BadSignature("signature timestamp is more than 5 minutes away from now")
    expected = sign(body, timestamp=t).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, given):
        raise BadSignature("signature does not match the body")
