"""Who may retry, cancel, pause and resume: the holder of the dashboard's bearer token.

Without a configured token the dashboard is read-only (403); with one, a request must send
``Authorization: Bearer <token>`` (401 otherwise). Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac

TOKEN_ENV = "TASKSTORE_DASHBOARD_TOKEN"
READ_ONLY = (
    f"the dashboard is read-only: start it with --token (or {TOKEN_ENV}) to allow retry, "
    "cancel, pause and resume"
)
BAD_TOKEN = (
    "retry, cancel, pause and resume need the header `Authorization: Bearer <token>` with the token"
)
WRONG_TOKEN = (
    "wrong token for retry, cancel, pause and resume: not the one the dashboard was started "
    f"with (--token or {TOKEN_ENV})"
)


def configured(token: str | None) -> str | None:
    """The token to require: without the whitespace around it (an env file's or a
    secret's newline, which no request could send); a blank one is none."""
    return (token or "").strip() or None


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, if that is what it holds."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def refusal(token: str | None, header: str | None) -> tuple[int, str] | None:
    """None when the request may write, else (HTTP status, one-line reason)."""
    if not token:
        return 403, READ_ONLY
    given = bearer(header)
    if given is None:
        return 401, BAD_TOKEN
    if not hmac.compare_digest(given.encode(), token.encode()):
        return 401, WRONG_TOKEN
    return None
