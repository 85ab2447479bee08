"""Settings from the environment and `.env` (names fixed by docs/configuration in README).

Loaded once per process through :func:`get_settings`; a bad value raises :class:`~kallos.errors.ConfigError`
naming the environment variable and the accepted values, never a pydantic traceback.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kallos.errors import ConfigError

Plan = Literal["public", "demo", "pro"]
PLAN_DEFAULT_RATE = {"public": 5, "demo": 30, "pro": 500}


def default_database_url() -> str:
    data_dir = Path(platformdirs.user_data_dir("kallos", appauthor=False))
    return f"duckdb:///{data_dir / 'kallos.duckdb'}"


class Settings(BaseSettings):
    """All of Kallos' knobs. Field aliases are the environment variable names users see."""

    model_config = SettingsConfigDict(
        env_prefix="KALLOS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,
    )

    database_url: str = Field(default_factory=default_database_url)
    coingecko_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("COINGECKO_API_KEY", "KALLOS_COINGECKO_API_KEY")
    )
    coingecko_plan: Plan = "public"
    coingecko_base_url: str | None = None
    rate_limit_per_minute: float | None = Field(default=None, gt=0)
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=6, ge=0, le=50)
    retry_after_max_seconds: float = Field(default=300.0, ge=0)
    concurrency: int = Field(default=8, ge=1, le=256)
    daily_close_source: Literal["chart", "markets", "mixed"] | None = None
    """docs/decisions.md#D5, D117: unset means `mixed` on pro and `markets` elsewhere."""
    exact_close_top: int = Field(default=100, ge=0, le=15000)
    """Mixed mode (docs/decisions.md#D117): today's top N by market cap get exact chart closes and candles, beside
    every index's constituents and candidates; the other coins take their final day from the close-window sweep."""
    close_window_minutes: int = Field(default=60, ge=1, le=1440)
    raw_archive: bool = False
    log_format: Literal["json", "console"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_file: Path | None = None
    signal_config: Path | None = None
    min_coverage: float = Field(default=0.9, ge=0, le=1)
    close_only_approx: bool = False
    workers: int | None = Field(default=None, ge=1)
    now: dt.datetime | None = None
    executor: Literal["local", "threads", "dask"] = "local"
    dask_scheduler: str | None = None
    index_base_date: dt.date | None = None
    # the default index's methodology (docs/index.md, docs/decisions.md#D62)
    index_constituents: int = Field(default=20, ge=1, le=1000)
    index_max_weight: float = Field(default=0.35, gt=0, le=1)
    index_rebalance: Literal["monthly", "quarterly"] = "monthly"
    index_rank_buffer: int = Field(default=0, ge=0)
    index_min_history_days: int = Field(default=1095, ge=0)
    index_min_coverage: float = Field(default=0.9, ge=0, le=1)
    index_cost_bps: float | None = Field(default=None, ge=0, lt=10_000)
    index_excluded_categories: str = "default"
    index_risk_free: float = Field(default=0.0, gt=-1, le=1)
    signals_excluded_categories: str = "default"
    pg_partition_by_year: bool = False
    universe_top: int | None = Field(default=None, ge=1, le=15000)
    """The configured universe: today's top N by market cap; the daily run backfills coins that enter it."""
    entrant_calls_per_run: int = Field(default=200, ge=0)
    """API calls a daily run may spend backfilling new entrants (0: report them, backfill none)."""
    coingecko_ws_url: str = "wss://stream.coingecko.com/v1"
    stream_nats_url: str | None = None
    stream_redis_url: str | None = None
    stream_flush_seconds: float = Field(default=1.0, gt=0, le=3600)
    stream_silence_seconds: float = Field(default=60.0, gt=0)
    stream_snapshot_seconds: float = Field(default=300.0, ge=0)
    hourly_universe: int = Field(default=20, ge=0, le=10_000)
    """Coins the daily run keeps hourly bars for: the index's top N (0 turns hourly updates off)."""
    dashboard_token: SecretStr | None = None
    """Bearer token `kallos serve` requires (always when set; needed to bind beyond loopback, D95)."""
    dashboard_refresh_seconds: int = Field(default=30, ge=0, le=86400)
    """How often dashboard pages refresh themselves (0 = never)."""

    @field_validator("dashboard_token", mode="after")
    @classmethod
    def _token_strength(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (secrets.token_urlsafe())")
        return v

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("index_max_weight", mode="after")
    @classmethod
    def _cap_feasible(cls, v: float, info: ValidationInfo) -> float:
        n = info.data.get("index_constituents")
        if n is not None and n * v < 1 - 1e-12:
            raise ValueError(f"{n} constituents cannot be capped at {v:g}: constituents x cap must be at least 1")
        return v

    @field_validator("coingecko_plan", "log_format", "executor", "daily_close_source", "index_rebalance", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @field_validator("coingecko_api_key", mode="before")
    @classmethod
    def _clean_key(cls, v: Any) -> Any:
        """docs/decisions.md#D50: surrounding whitespace (a trailing newline from `echo` or a heredoc) is
        stripped; any other control or non-ASCII character cannot be sent in an HTTP header, so the key is
        refused here, by name and never by value, instead of failing inside the HTTP library."""
        if isinstance(v, SecretStr):
            v = v.get_secret_value()
        if not isinstance(v, str):
            return v
        v = v.strip()
        if any(not (32 <= ord(ch) < 127) for ch in v):
            raise ValueError(
                "the key contains a control or non-ASCII character (a pasted quote, a non-breaking space, an "
                "embedded newline); copy it again from the CoinGecko dashboard"
            )
        return v or None

    @field_validator("coingecko_base_url")
    @classmethod
    def _check_base_url(cls, v: str | None) -> str | None:
        """docs/decisions.md#D54: only http(s) can ever answer; anything else is refused at load, not retried."""
        if v is None or not v.strip():
            return None
        v = v.strip()
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host, e.g. https://pro-api.coingecko.com/api/v3")
        return v

    @field_validator("dask_scheduler")
    @classmethod
    def _check_scheduler(cls, v: str | None) -> str | None:
        """docs/decisions.md#D52: a Dask scheduler address is `tcp://host:port` (or tls://, ucx://, or
        host:port); anything else would only fail after a long connect timeout."""
        if v is None or not v.strip():
            return None
        v = v.strip()
        target = v if "://" in v else f"tcp://{v}"
        parts = urlsplit(target)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("tcp", "tls", "ucx", "ws", "wss") or not parts.hostname or port is None:
            raise ValueError("must be a scheduler address like tcp://127.0.0.1:8786")
        return v

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        if not v.startswith(("duckdb://", "postgresql://", "postgres://", "postgresql+")):
            raise ValueError("must start with duckdb:/// or postgresql://")
        return v

    @field_validator("coingecko_ws_url")
    @classmethod
    def _check_ws_url(cls, v: str) -> str:
        if not v.startswith(("wss://", "ws://")):
            raise ValueError("must start with wss:// (or ws:// for loopback testing)")
        return v

    @field_validator("stream_nats_url")
    @classmethod
    def _check_nats_url(cls, v: str | None) -> str | None:
        if v and not v.startswith(("nats://", "tls://")):
            raise ValueError("must start with nats:// or tls://")
        return v or None

    @field_validator("stream_redis_url")
    @classmethod
    def _check_redis_url(cls, v: str | None) -> str | None:
        if v and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v or None

    @field_validator("now", mode="after")
    @classmethod
    def _utc(cls, v: dt.datetime | None) -> dt.datetime | None:
        if v is not None and v.tzinfo is None:
            return v.replace(tzinfo=dt.UTC)
        return v.astimezone(dt.UTC) if v is not None else None

    @property
    def api_key(self) -> str | None:
        return self.coingecko_api_key.get_secret_value() if self.coingecko_api_key else None

    @property
    def partition_request(self) -> bool | None:
        """KALLOS_PG_PARTITION_BY_YEAR when the user set it (env, .env or a flag), else None: keep what exists
        (docs/decisions.md#D58)."""
        return self.pg_partition_by_year if "pg_partition_by_year" in self.model_fields_set else None

    @property
    def effective_rate_limit(self) -> float:
        """Requests per minute: the override, else the plan's documented default."""
        return self.rate_limit_per_minute or float(PLAN_DEFAULT_RATE[self.coingecko_plan])

    @property
    def effective_close_source(self) -> str:
        """docs/decisions.md#D5, D117: on pro `mixed` (exact chart closes and candles for the exact-close universe,
        the close-window sweep for the other coins), the cheap markets sweep elsewhere; an explicit
        `chart` or `markets` keeps its meaning."""
        if self.daily_close_source:
            return self.daily_close_source
        return "mixed" if self.coingecko_plan == "pro" else "markets"


_ACCEPTED = {
    "coingecko_plan": "public, demo, pro",
    "log_format": "json, console",
    "log_level": "DEBUG, INFO, WARNING, ERROR, CRITICAL",
    "executor": "local, threads, dask",
    "daily_close_source": "chart, markets, mixed",
    "index_rebalance": "monthly, quarterly",
    "coingecko_ws_url": "wss://host/path (ws:// for loopback testing)",
    "stream_nats_url": "nats://host:4222",
    "stream_redis_url": "redis://host:6379/0",
    "database_url": "duckdb:///relative.duckdb, duckdb:////abs/path.duckdb, postgresql://user@host:port/db",
}


def env_name(field: str) -> str:
    if field == "coingecko_api_key":
        return "COINGECKO_API_KEY"
    return f"KALLOS_{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning pydantic's validation error into one ConfigError per bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        name = env_name(field)
        accepted = _ACCEPTED.get(field)
        hint = f"; accepted values: {accepted}" if accepted else ""
        raise ConfigError(f"invalid setting {name}: {first['msg']}{hint}", setting=name) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
