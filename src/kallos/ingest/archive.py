"""The raw archive (`KALLOS_RAW_ARCHIVE=true`, off by default): every answered request into `raw_responses`.

Each row keeps the endpoint, its parameters (never the key: the client sends it as a header), the HTTP status,
the fetch time and the body. A response whose fields differ from the known schema gets `schema_drift` filled and a
warning, once per endpoint and difference per run, so field drift (docs/decisions.md (C-API.7)) is noticed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from typing import Any

import pandas as pd

from kallos.log import get_logger
from kallos.store import Store

log = get_logger("kallos.ingest.archive")

# Top-level (or row-level, for arrays of objects) fields Kallos knows per endpoint.
KNOWN_FIELDS: dict[str, frozenset[str]] = {
    "/coins/list": frozenset({"id", "symbol", "name", "platforms"}),
    "/coins/markets": frozenset(
        {
            "id",
            "symbol",
            "name",
            "image",
            "current_price",
            "market_cap",
            "market_cap_rank",
            "fully_diluted_valuation",
            "total_volume",
            "high_24h",
            "low_24h",
            "price_change_24h",
            "price_change_percentage_24h",
            "market_cap_change_24h",
            "market_cap_change_percentage_24h",
            "circulating_supply",
            "total_supply",
            "max_supply",
            "ath",
            "ath_change_percentage",
            "ath_date",
            "atl",
            "atl_change_percentage",
            "atl_date",
            "roi",
            "last_updated",
        }
    ),
    "/coins/{id}/market_chart": frozenset({"prices", "market_caps", "total_volumes"}),
    "/coins/{id}/market_chart/range": frozenset({"prices", "market_caps", "total_volumes"}),
    "/coins/{id}": frozenset(
        {
            "id",
            "symbol",
            "name",
            "web_slug",
            "asset_platform_id",
            "platforms",
            "detail_platforms",
            "block_time_in_minutes",
            "hashing_algorithm",
            "categories",
            "preview_listing",
            "public_notice",
            "additional_notices",
            "localization",
            "description",
            "links",
            "image",
            "country_origin",
            "genesis_date",
            "sentiment_votes_up_percentage",
            "sentiment_votes_down_percentage",
            "watchlist_portfolio_users",
            "market_cap_rank",
            "market_data",
            "community_data",
            "developer_data",
            "status_updates",
            "last_updated",
            "tickers",
        }
    ),
}


def schema_drift(endpoint: str, body: Any) -> str | None:
    """'+field' for unknown fields, '-field' for known ones missing; None when the shape matches or is
    unknown.
    """
    known = KNOWN_FIELDS.get(endpoint)
    if known is None:
        return None
    sample = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else body
    if not isinstance(sample, dict):
        return None
    keys = set(sample)
    added = sorted(keys - known)
    removed = sorted(known - keys) if endpoint.startswith("/coins/{id}/market_chart") else []
    if not added and not removed:
        return None
    return " ".join([*(f"+{k}" for k in added), *(f"-{k}" for k in removed)])


class RawArchive:
    """Collects responses from the client's hook; `flush()` writes them (called at each batch end)."""

    def __init__(self, store: Store | None) -> None:
        self.store = store
        self.pending: list[dict[str, Any]] = []
        self.warned: set[tuple[str, str]] = set()
        self.written = 0

    def __call__(
        self, endpoint: str, params: dict[str, Any], status: int, body: bytes, fetched_at: dt.datetime
    ) -> None:
        text = body.decode("utf-8", "replace")
        drift = None
        if status == 200:
            try:
                drift = schema_drift(endpoint, json.loads(text))
            except ValueError:
                drift = "unparseable JSON"
        if drift and (endpoint, drift) not in self.warned:
            self.warned.add((endpoint, drift))
            log.warning(
                "response fields differ from the known schema: %s",
                drift,
                extra={"endpoint": endpoint, "schema_drift": drift},
            )
        p = json.dumps(params, sort_keys=True, default=str)
        # Fetch times can repeat (a pinned clock, a coarse server clock): a random part keeps every answer.
        rid = hashlib.sha256(
            f"{endpoint}|{p}|{fetched_at.isoformat()}|{uuid.uuid4().hex}".encode()
        ).hexdigest()
        self.pending.append(
            {
                "response_id": rid,
                "endpoint": endpoint,
                "params": p,
                "status": status,
                "fetched_at": fetched_at,
                "body": text,
                "schema_drift": drift,
            }
        )

    async def flush(self) -> int:
        if self.store is None or not self.pending:
            self.pending.clear()
            return 0
        rows, self.pending = self.pending, []
        n = self.store.upsert("raw_responses", pd.DataFrame(rows))
        self.written += n
        return n


def attach_archive(store: Store, client: Any, settings: Any) -> RawArchive:
    """Hook a RawArchive into the client when the setting is on (and no other sink is set), else a no-op."""
    if not getattr(settings, "raw_archive", False):
        return RawArchive(None)
    existing = getattr(client, "on_response", None)
    if isinstance(existing, RawArchive):
        return existing
    archive = RawArchive(store)
    if existing is None:
        client.on_response = archive
    return archive
