"""CoinGecko's error bodies, byte for byte where the contract (docs/decisions.md (C-API.3)) quotes them.

The real API answers errors in five shapes; clients must parse all of them, so the fake serves each one
exactly where the real API does.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

RATE_LIMIT_MESSAGE = (
    "You've exceeded the Rate Limit. Please visit https://www.coingecko.com/en/api/pricing "
    "to subscribe to our API plans for higher rate limits."
)
HISTORY_LIMIT_MESSAGE = (
    "Your request exceeds the allowed time range. Public API users are limited to querying historical data "
    "within the past 365 days. Upgrade to a paid plan to enjoy full historical data access: "
    "https://www.coingecko.com/en/api/pricing. "
)
PRO_ONLY_MESSAGE = "This request is limited Pro API subscribers"
MISSING_KEY_MESSAGE = (
    "Missing or invalid API key. Pro API requires x_cg_pro_api_key, Demo API requires x_cg_demo_api_key."
)
PRO_KEY_ON_PUBLIC_HOST = (
    "If you are using Pro API key, please change your root URL from api.coingecko.com to "
    "pro-api.coingecko.com"
)
DEMO_KEY_ON_PRO_HOST = (
    "If you are using Demo API key, please change your root URL from pro-api.coingecko.com to "
    "api.coingecko.com"
)

CLOUDFLARE_1020_HTML = """<!DOCTYPE html>
<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->
<html class="no-js" lang="en-US">
<head>
<title>Access denied | api.coingecko.com used Cloudflare to restrict access</title>
<meta charset="UTF-8" />
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head>
<body>
  <div id="cf-wrapper">
    <div id="cf-error-details" class="cf-error-details-wrapper">
      <div class="cf-wrapper cf-header cf-error-overview">
<h1><span class="cf-error-type" data-translate="error">Error</span>
<span class="cf-error-code">1020</span></h1>
        <h2 class="cf-subheadline" data-translate="error_desc">Access denied</h2>
      </div>
<section><p>This website is using a security service to protect itself from online attacks.</p></section>
      <div class="cf-error-footer"><p>Cloudflare Ray ID: <strong>7f0a1b2c3d4e5f60</strong></p></div>
    </div>
  </div>
</body>
</html>
"""

PROXY_HTML = {
    502: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n",
    503: "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n",
}


def cg_timestamp(now: dt.datetime) -> str:
    """The timestamp style of CoinGecko's error bodies: 2024-03-30T07:22:29.427+00:00."""
    now = now.astimezone(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+00:00"


class ApiError(Exception):
    """An error answer: status, JSON body (or text for HTML), optional headers."""

    def __init__(
        self,
        status: int,
        body: Any,
        *,
        content_type: str = "application/json; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def flat(status: int, message: str) -> ApiError:
    """Shape 3: ``{"error": "..."}`` (400 bad value, 404 unknown coin, 422 missing parameter)."""
    return ApiError(status, {"error": message})


def coin_not_found() -> ApiError:
    return flat(404, "coin not found")


def missing_parameter(name: str) -> ApiError:
    return flat(422, f"Missing parameter {name}")


def rate_limited(retry_after: int | None) -> ApiError:
    headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
    return ApiError(
        429, {"status": {"error_code": 429, "error_message": RATE_LIMIT_MESSAGE}}, headers=headers
    )


def missing_key() -> ApiError:
    """10002 -> HTTP 401 (docs/decisions.md#D29)."""
    return ApiError(401, {"status": {"error_code": 10002, "error_message": MISSING_KEY_MESSAGE}})


def pro_only() -> ApiError:
    """10005 -> HTTP 401."""
    return ApiError(401, {"status": {"error_code": 10005, "error_message": PRO_ONLY_MESSAGE}})


def wrong_host(error_code: int, now: dt.datetime) -> ApiError:
    """10010 (pro key on the public host) / 10011 (demo key on the pro host) -> HTTP 400, shape 4."""
    message = PRO_KEY_ON_PUBLIC_HOST if error_code == 10010 else DEMO_KEY_ON_PRO_HOST
    return ApiError(
        400, {"timestamp": cg_timestamp(now), "error_code": error_code, "status": {"error_message": message}}
    )


def history_limit(now: dt.datetime) -> ApiError:
    """10012 -> HTTP 401, shape 2 (doubly nested, with a timestamp)."""
    return ApiError(
        401,
        {
            "error": {
                "status": {
                    "timestamp": cg_timestamp(now),
                    "error_code": 10012,
                    "error_message": HISTORY_LIMIT_MESSAGE,
                }
            }
        },
    )


def server_error(status: int) -> ApiError:
    if status == 500:
        return ApiError(500, {"status": 500, "error": "Internal Server Error"})
    return ApiError(status, PROXY_HTML.get(status, PROXY_HTML[502]), content_type="text/html")


def blocked() -> ApiError:
    """error_code 20000 -> HTTP 403 (docs/decisions.md#D29); the nested-status shape, as its neighbours use."""
    return ApiError(
        403,
        {
            "status": {
                "error_code": 20000,
                "error_message": "Blocked: malicious activity detected from your ASN",
            }
        },
    )


def cloudflare_403() -> ApiError:
    return ApiError(
        403,
        CLOUDFLARE_1020_HTML,
        content_type="text/html; charset=UTF-8",
        headers={"Server": "cloudflare", "CF-RAY": "7f0a1b2c3d4e5f60-FRA"},
    )
