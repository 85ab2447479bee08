"""Turn a CoinGecko error response into a typed :mod:`kallos.errors` exception with an actionable message.

CoinGecko answers errors in at least four JSON shapes plus Cloudflare HTML pages (docs/coingecko-client.md)::

    {"status": {"error_code": 429, "error_message": "..."}}                       # 1: nested status
    {"error": {"status": {"timestamp": "...", "error_code": 10012, ...}}}          # 2: doubly nested
    {"error": "coin not found"}                                                    # 3: flat string
    {"timestamp": "...", "error_code": 10011, "status": {"error_message": "..."}}  # 4: flat code
    {"status": 500, "error": "Internal Server Error"}                              # (recorded 2021 500)
    <html>... Cloudflare "Access denied" / "Error 1020" ...</html>                 # 5: CDN

The CoinGecko error code decides first (it is the more specific), then the HTTP status. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kallos.errors import (
    AuthError,
    BadRequestError,
    CoinGeckoError,
    NotFoundError,
    PlanLimitError,
    RateLimitedError,
    TransientAPIError,
)
from kallos.log import redact

RETRYABLE_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))


class ResponseShapeError(CoinGeckoError):
    """A 200 answer whose JSON lacks the documented shape (not retried: it would come back the same)."""


@dataclass(frozen=True)
class ErrorBody:
    """What could be read from an error body, whatever its shape."""

    error_code: int | None
    message: str | None
    html: bool = False
    cloudflare: bool = False
    cloudflare_code: int | None = None


def parse_error_body(body: bytes | str, content_type: str | None = None) -> ErrorBody:
    """Extract the CoinGecko error code and message from any of the known shapes (never raises)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    stripped = text.lstrip()
    is_html = stripped[:1] == "<" or (content_type or "").startswith("text/html")
    if is_html:
        return _parse_html(text)
    try:
        data = json.loads(text)
    except ValueError:
        return ErrorBody(None, _first_line(text) or None)
    if not isinstance(data, Mapping):
        return ErrorBody(None, None)
    code, message = _walk(data)
    return ErrorBody(code, message)


def _walk(data: Mapping[str, Any]) -> tuple[int | None, str | None]:
    code = _int(data.get("error_code"))
    message = _str(data.get("error_message"))
    status = data.get("status")
    if isinstance(status, Mapping):
        inner_code, inner_msg = _walk(status)
        code = code if code is not None else inner_code
        message = message or inner_msg
    error = data.get("error")
    if isinstance(error, Mapping):
        inner_code, inner_msg = _walk(error)
        code = code if code is not None else inner_code
        message = message or inner_msg
    elif isinstance(error, str):
        message = message or error
    if message is None and isinstance(data.get("message"), str):
        message = data["message"]
    return code, message


def _parse_html(text: str) -> ErrorBody:
    lower = text.lower()
    cloudflare = "cloudflare" in lower or "cf-ray" in lower or "cf-error" in lower
    cf_code = None
    match = re.search(r"cf-error-code[^>]*>\s*(\d{3,4})", text) or re.search(
        r"error(?:\s|&nbsp;|<[^>]*>)*(?:code)?(?:\s|:|&nbsp;|<[^>]*>)*(\d{4})", text, re.IGNORECASE
    )
    if match:
        cf_code = int(match.group(1))
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    message = re.sub(r"\s+", " ", title.group(1)).strip() if title else None
    return ErrorBody(None, message, html=True, cloudflare=cloudflare, cloudflare_code=cf_code)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds, or an HTTP date read against the Kallos clock)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        import datetime as dt

        from kallos.clock import utcnow

        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - utcnow()).total_seconds()
    return max(seconds, 0.0)


def error_for_response(
    status: int,
    body: bytes | str,
    *,
    headers: Mapping[str, str] | None = None,
    endpoint: str | None = None,
    coin_id: str | None = None,
    plan: str | None = None,
) -> CoinGeckoError:
    """The typed error for a non-200 answer. Transient ones (TransientAPIError subclasses) are retried."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    parsed = parse_error_body(body, headers.get("content-type"))
    code = parsed.error_code
    said = redact(parsed.message) if parsed.message else None
    ctx: dict[str, Any] = {"endpoint": endpoint, "status": status, "coin_id": coin_id}
    suffix = f' (CoinGecko said: "{_clip(said)}")' if said else ""
    plan_text = f"KALLOS_COINGECKO_PLAN={plan}" if plan else "KALLOS_COINGECKO_PLAN"

    if code == 10002:
        return AuthError(
            f"CoinGecko says the API key is missing or not accepted ({plan_text}); set COINGECKO_API_KEY to "
            "a key of that plan (demo keys are sent as x-cg-demo-api-key, pro keys as x-cg-pro-api-key)"
            + suffix,
            error_code=code,
            **ctx,
        )
    if code == 10010:
        return AuthError(
            "a pro API key was sent to the public/demo host api.coingecko.com: set KALLOS_COINGECKO_PLAN=pro "
            "(and unset KALLOS_COINGECKO_BASE_URL unless it points at pro-api.coingecko.com)" + suffix,
            error_code=code,
            **ctx,
        )
    if code == 10011:
        return AuthError(
            "a demo API key was sent to the pro host pro-api.coingecko.com: set KALLOS_COINGECKO_PLAN=demo "
            "(and unset KALLOS_COINGECKO_BASE_URL unless it points at api.coingecko.com)" + suffix,
            error_code=code,
            **ctx,
        )
    if code == 10005:
        return PlanLimitError(
            f"{endpoint or 'this endpoint'} is reserved to paid CoinGecko plans ({plan_text}); use an "
            "endpoint your plan has, or a pro key with KALLOS_COINGECKO_PLAN=pro" + suffix,
            error_code=code,
            **ctx,
        )
    if code == 10012:
        return PlanLimitError(
            f"the request reaches further back than your plan allows ({plan_text}: demo and keyless keys get "
            "the past 365 days only); shrink the date range (kallos.coingecko.plans.clamp_range) or use a "
            "pro key" + suffix,
            error_code=code,
            **ctx,
        )
    if code == 20000:
        return AuthError(
            "CoinGecko blocked requests from your network (ASN) as malicious activity; retrying will not "
            "help: "
            "run from another network or contact CoinGecko support" + suffix,
            error_code=code,
            **ctx,
        )
    retry_after = parse_retry_after(headers.get("retry-after"))
    if status == 429 or code == 429:
        wait = f"; the server asked to wait {retry_after:g} s" if retry_after is not None else ""
        return RateLimitedError(
            "CoinGecko rate limit exceeded (HTTP 429)"
            + wait
            + "; lower KALLOS_RATE_LIMIT_PER_MINUTE if this "
            "repeats, or check that no other job uses the same key" + suffix,
            retry_after=retry_after,
            error_code=code,
            **ctx,
        )
    if parsed.html and parsed.cloudflare and status < 500:
        cf = f" (Cloudflare error {parsed.cloudflare_code})" if parsed.cloudflare_code else ""
        return AuthError(
            f"CoinGecko's CDN (Cloudflare) refused the request with HTTP {status}{cf}: your IP or network is "
            "blocked by its firewall; retrying will not help. Use an API key (COINGECKO_API_KEY), another "
            "network, or contact CoinGecko support" + (f' (page title: "{_clip(said)}")' if said else ""),
            error_code=parsed.cloudflare_code,
            **ctx,
        )
    if status in RETRYABLE_STATUS:
        kind = "timed out (HTTP 408)" if status == 408 else f"server error (HTTP {status})"
        if parsed.html:
            kind += " with an HTML page" + (" from Cloudflare" if parsed.cloudflare else "")
        return TransientAPIError(f"CoinGecko {kind}; transient, retried" + suffix, error_code=code, **ctx)
    if status == 404:
        if coin_id:
            return NotFoundError(
                f"CoinGecko does not know the coin {coin_id!r} (HTTP 404); check the id with `kallos coins "
                "list` (ids change when coins are renamed or delisted)" + suffix,
                error_code=code,
                **ctx,
            )
        return NotFoundError(
            f"CoinGecko endpoint {endpoint} not found (HTTP 404)" + suffix, error_code=code, **ctx
        )
    if status == 401:
        return AuthError(
            f"CoinGecko rejected the API key (HTTP 401, {plan_text}); check COINGECKO_API_KEY and that the "
            "plan matches the key" + suffix,
            error_code=code,
            **ctx,
        )
    if status == 403:
        return AuthError(
            "CoinGecko refused access (HTTP 403): the key or network is blocked; retrying will not help"
            + suffix,
            error_code=code,
            **ctx,
        )
    return BadRequestError(
        f"CoinGecko rejected the request as invalid (HTTP {status}); fix its parameters" + suffix,
        error_code=code,
        **ctx,
    )


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, TransientAPIError)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def _clip(text: str | None, limit: int = 300) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."
