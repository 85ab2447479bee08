"""The one schema definition, rendered to DDL for PostgreSQL and DuckDB.

Tables keep the seed's names and columns (docs/data-model.md). Prices, caps, volumes and indicators are DOUBLE
PRECISION (the seed's NUMERIC(20,8) loses 1e-10 prices and overflows on 1e12 caps). Daily facts are keyed by
(coin_id, date) with no surrogate id and no foreign key: the write path checks coins while staging, which makes
bulk loads about 2.5x faster on PostgreSQL (docs/benchmarks.md).

In frames, `coin_id` is always the CoinGecko id string; the store maps it to the integer `coins.coin_id`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kallos.indicators.contract import COMPOSITE_COLUMNS, INDICATOR_COLUMNS

# Column types are written once in PostgreSQL spelling; DuckDB accepts the same names.
DOUBLE = "DOUBLE PRECISION"
BIGINT = "BIGINT"
INTEGER = "INTEGER"
SMALLINT = "SMALLINT"
TEXT = "TEXT"
DATE = "DATE"
TS = "TIMESTAMPTZ"
BOOL = "BOOLEAN"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    default: str | None = None


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    coin_keyed: bool = True
    """`coin_id` is the CoinGecko id in frames and the integer surrogate in the database."""
    date_column: str | None = "date"
    indexes: tuple[tuple[str, ...], ...] = ()
    audit: tuple[str, ...] = field(default=())
    """Columns the database fills (defaults) that upserts never compare or overwrite from frames."""
    primary_key: tuple[str, ...] | None = None
    """Defaults to `key`; differs only for `coins` (surrogate PK, upserts by the unique CoinGecko id)."""
    partitionable: bool = False
    """A fact table that PostgreSQL may range-partition on `date_column` (docs/scaling.md)."""
    partition_unit: str = "year"
    """`year` for daily and weekly tables, `month` for hourly ones (docs/decisions.md#D81)."""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def value_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.name not in self.key and c.name not in self.audit]


def _cols(*specs: tuple) -> tuple[Column, ...]:
    return tuple(Column(*s) for s in specs)


_AUDIT = (("updated_at", TS, True, "now()"),)

COINS = Table(
    "coins",
    _cols(
        ("coin_id", BIGINT, False, "nextval('coins_coin_id_seq')"),
        ("coingecko_id", TEXT, False),
        ("symbol", TEXT, False),
        ("name", TEXT, False),
        ("category", TEXT),
        ("genesis_date", DATE),
        ("description", TEXT),
        ("status", TEXT, True),  # active | inactive (delisted coins are kept, never deleted)
        ("platforms", TEXT),  # JSON object {platform: contract address}
        ("hashing_algorithm", TEXT),
        ("links", TEXT),  # JSON
        ("community_data", TEXT),  # JSON, NULL where CoinGecko no longer supplies it
        ("developer_data", TEXT),  # JSON
        ("market_cap_rank", INTEGER),
        ("first_seen", TS),
        ("last_seen", TS),
        ("details_updated_at", TS),
        ("created_at", TS, True, "now()"),
        ("updated_at", TS, True, "now()"),
    ),
    key=("coingecko_id",),
    primary_key=("coin_id",),
    coin_keyed=False,
    date_column=None,
    indexes=(("symbol",), ("category",), ("status",)),
    audit=("coin_id", "created_at", "updated_at"),
)

COIN_CATEGORIES = Table(
    "coin_categories",
    _cols(
        ("coin_id", BIGINT, False),
        ("category_id", TEXT, False),
        ("name", TEXT),
        ("first_seen", TS),
        ("last_seen", TS),
    ),
    key=("coin_id", "category_id"),
    date_column=None,
    indexes=(("category_id",),),
)

DAILY_MARKET_DATA = Table(
    "daily_market_data",
    _cols(
        ("coin_id", BIGINT, False),
        ("date", DATE, False),
        ("open", DOUBLE),  # NULL where no real candle exists: never invented from the close
        ("high", DOUBLE),
        ("low", DOUBLE),
        ("close", DOUBLE, False),
        ("volume", DOUBLE),
        ("market_cap", DOUBLE),  # NULL = unknown (CoinGecko's 0 is stored as NULL)
        ("ohlc_source", TEXT),  # 'candles' (CoinGecko ohlc), 'exchange', or NULL (close only)
        ("close_source", TEXT),  # 'chart' | 'markets' | 'csv'
        ("snapped_at", TS),  # the real timestamp of the close
        *_AUDIT,
    ),
    key=("coin_id", "date"),
    audit=("updated_at",),
    partitionable=True,
)

MARKET_SNAPSHOTS = Table(
    "market_snapshots",
    _cols(
        ("coin_id", BIGINT, False),
        ("fetched_at", TS, False),
        ("price", DOUBLE),
        ("market_cap", DOUBLE),
        ("volume", DOUBLE),
        ("source", TEXT),
    ),
    key=("coin_id", "fetched_at"),
    date_column="fetched_at",
)

DAILY_TECHNICAL_INDICATORS = Table(
    "daily_technical_indicators",
    _cols(
        ("coin_id", BIGINT, False),
        ("date", DATE, False),
        ("ohlc_source", TEXT),  # 'candles' | 'close_only_approx' | NULL (high/low indicators absent)
        *((name, DOUBLE) for name in INDICATOR_COLUMNS + COMPOSITE_COLUMNS),
        *_AUDIT,
    ),
    key=("coin_id", "date"),
    audit=("updated_at",),
    partitionable=True,
)

TRADING_SIGNALS = Table(
    "trading_signals",
    _cols(
        ("coin_id", BIGINT, False),
        ("date", DATE, False),
        ("signal", TEXT, False),  # rule id, or 'composite'
        ("direction", SMALLINT),  # +1 / -1 (composite: sign of the score)
        ("strength", DOUBLE),  # [0, 1]
        ("composite_score", DOUBLE),  # [-1, 1], composite rows only
        ("action", TEXT),  # buy | sell | hold, composite rows only
        ("config_hash", TEXT, False),
        ("run_id", TEXT),
        *_AUDIT,
    ),
    key=("coin_id", "date", "signal"),
    indexes=(("date",), ("signal", "date")),
    audit=("updated_at",),
    partitionable=True,
)

INDEX_NAME_COLUMN = ("index_name", TEXT, False, "'default'")
"""Every index table is keyed by the index's name first (docs/decisions.md#D62); `default` is the spec's index."""

INDEX_MONTHLY_CONSTITUENTS = Table(
    "index_monthly_constituents",
    _cols(
        INDEX_NAME_COLUMN,
        ("year", INTEGER, False),
        ("month", INTEGER, False),
        ("coin_id", BIGINT, False),
        ("selection_date", DATE, False),
        ("rank", INTEGER, False),
        ("market_cap", DOUBLE, False),
        ("weight", DOUBLE, False),
        ("run_id", TEXT),
        *_AUDIT,
    ),
    key=("index_name", "year", "month", "coin_id"),
    date_column="selection_date",
    audit=("updated_at",),
)

DAILY_INDEX_VALUES = Table(
    "daily_index_values",
    _cols(
        INDEX_NAME_COLUMN,
        ("date", DATE, False),
        ("index_value", DOUBLE, False),
        ("daily_return", DOUBLE, False),
        ("net_index_value", DOUBLE),  # after transaction costs, when the option is on
        ("net_daily_return", DOUBLE),
        ("run_id", TEXT),
        *_AUDIT,
    ),
    key=("index_name", "date"),
    coin_keyed=False,
    audit=("updated_at",),
)

INDEX_TURNOVER = Table(
    "index_turnover",
    _cols(
        INDEX_NAME_COLUMN,
        ("selection_date", DATE, False),
        ("turnover", DOUBLE, False),
        ("run_id", TEXT),
        *_AUDIT,
    ),
    key=("index_name", "selection_date"),
    coin_keyed=False,
    date_column="selection_date",
    audit=("updated_at",),
)

INDEX_DEFINITIONS = Table(
    "index_definitions",
    _cols(
        ("index_name", TEXT, False),
        ("params", TEXT),  # JSON methodology (kallos.index.definition); NULL = the settings' (default index)
        ("base_date", DATE),  # the persisted base date (docs/decisions.md#D34)
        ("dirty_from", DATE),  # earliest close/market cap changed since the last build (docs/decisions.md#D61)
        ("built_through", DATE),  # last day valued by the last build
        ("built_at", TS),
        ("created_at", TS, True, "now()"),
        *_AUDIT,
    ),
    key=("index_name",),
    coin_keyed=False,
    date_column=None,
    audit=("created_at", "updated_at"),
)

DATA_QUALITY_EVENTS = Table(
    "data_quality_events",
    _cols(
        ("coin_id", BIGINT, False),
        ("date", DATE, False),
        ("source", TEXT, False),  # endpoint or file the row came from
        ("field", TEXT, False),  # column concerned ('row' for the whole row)
        ("reason", TEXT, False),  # reason code, e.g. non_positive_close
        ("action", TEXT, False),  # quarantined | nulled | floored | deduplicated | flagged
        ("raw", TEXT),  # the raw row as JSON
        ("detail", TEXT),
        ("run_id", TEXT),
        ("detected_at", TS, True, "now()"),
    ),
    key=("coin_id", "date", "source", "field", "reason"),
    indexes=(("action", "reason"),),
    audit=("detected_at",),
)

INGESTION_WATERMARKS = Table(
    "ingestion_watermarks",
    _cols(
        ("coin_id", BIGINT, False),
        ("series", TEXT, False),  # market_chart | ohlc | details | indicators | signals ...
        ("first_date", DATE),
        ("last_date", DATE),  # stored through this day (final days only)
        ("dirty_from", DATE),  # earliest date changed since downstream last computed (docs/decisions.md#D33)
        ("missing_dates", TEXT),  # JSON list of days confirmed missing at the source or quarantined
        ("state", TEXT),  # JSON: series-specific resumable state
        *_AUDIT,
    ),
    key=("coin_id", "series"),
    date_column=None,
    audit=("updated_at",),
)

PIPELINE_RUNS = Table(
    "pipeline_runs",
    _cols(
        ("run_id", TEXT, False),
        ("command", TEXT, False),
        ("started_at", TS, False),
        ("finished_at", TS),
        ("status", TEXT, False),  # running | success | partial | failed | skipped
        ("counts", TEXT),  # JSON
        ("error", TEXT),
        ("host", TEXT),
        ("version", TEXT),
    ),
    key=("run_id",),
    coin_keyed=False,
    date_column="started_at",
)

PIPELINE_STEPS = Table(
    "pipeline_steps",
    _cols(
        ("run_id", TEXT, False),
        ("step", TEXT, False),
        ("started_at", TS, False),
        ("finished_at", TS),
        ("status", TEXT, False),
        ("counts", TEXT),
        ("error", TEXT),
    ),
    key=("run_id", "step"),
    coin_keyed=False,
    date_column="started_at",
)

RAW_RESPONSES = Table(
    "raw_responses",
    _cols(
        ("response_id", TEXT, False),  # sha256 of endpoint + params + fetched_at
        ("endpoint", TEXT, False),
        ("params", TEXT),  # JSON, never the API key
        ("status", INTEGER),
        ("fetched_at", TS, False),
        ("body", TEXT),
        ("schema_drift", TEXT),  # fields that differ from the known schema
    ),
    key=("response_id",),
    coin_keyed=False,
    date_column="fetched_at",
)

# Alternative data over time (docs/features.md): the developer and community metrics, sentiment votes and watchlist
# users of `/coins/{id}` (every details refresh) or `/coins/{id}/history` (the backfill), one row per coin and day.
ALT_DEVELOPER_COLUMNS: tuple[str, ...] = (  # developer_data's counts, under CoinGecko's names
    "forks",
    "stars",
    "subscribers",
    "total_issues",
    "closed_issues",
    "pull_requests_merged",
    "pull_request_contributors",
    "commit_count_4_weeks",
)
ALT_CODE_COLUMNS: tuple[str, ...] = ("code_additions_4_weeks", "code_deletions_4_weeks")  # code_additions_deletions
ALT_COMMUNITY_COLUMNS: tuple[str, ...] = (  # community_data, under CoinGecko's names
    "facebook_likes",
    "twitter_followers",
    "reddit_subscribers",
    "reddit_average_posts_48h",
    "reddit_average_comments_48h",
    "reddit_accounts_active_48h",
    "telegram_channel_user_count",
)
ALT_TOP_COLUMNS: tuple[str, ...] = (  # top-level fields of /coins/{id}
    "sentiment_votes_up_percentage",
    "sentiment_votes_down_percentage",
    "watchlist_portfolio_users",
)
ALT_DATA_COLUMNS: tuple[str, ...] = ALT_DEVELOPER_COLUMNS + ALT_CODE_COLUMNS + ALT_COMMUNITY_COLUMNS + ALT_TOP_COLUMNS

COIN_DETAILS_HISTORY = Table(
    "coin_details_history",
    _cols(
        ("coin_id", BIGINT, False),
        ("date", DATE, False),  # the day the values describe (a refresh's UTC day; a backfill's snapshot day)
        ("source", TEXT, False),  # 'details' (/coins/{id}) | 'history' (/coins/{id}/history)
        ("fetched_at", TS),
        *((name, DOUBLE) for name in ALT_DATA_COLUMNS),
        *_AUDIT,
    ),
    key=("coin_id", "date"),
    audit=("updated_at",),
)

KV_STATE = Table(
    "kallos_state",
    _cols(("key", TEXT, False), ("value", TEXT), *_AUDIT),
    key=("key",),
    coin_keyed=False,
    date_column=None,
    audit=("updated_at",),
)

_TICK_COLUMNS = (
    ("price", DOUBLE),
    ("price_change_24h_pct", DOUBLE),
    ("market_cap", DOUBLE),
    ("volume_24h", DOUBLE),
    ("received_at", TS, False),
)

PRICE_TICKS = Table(
    "price_ticks",
    _cols(("coin_id", BIGINT, False), ("ts", TS, False), *_TICK_COLUMNS),
    key=("coin_id", "ts"),
    date_column="ts",
)
"""Every streamed price update, keyed by (coin, CoinGecko's update time) so replays are stored once."""

LATEST_PRICES = Table(
    "latest_prices",
    _cols(("coin_id", BIGINT, False), ("ts", TS, False), *_TICK_COLUMNS),
    key=("coin_id",),
    date_column="ts",
)
"""The newest streamed update per coin (docs/decisions.md#D103)."""


def _retimed(table: Table, name: str, *, hourly: bool, extra: tuple[Column, ...] = ()) -> Table:
    """The same table for another timeframe: hourly tables are keyed by `hour` (a UTC timestamp) and partitioned
    by month; weekly ones keep `date` (the week's Monday). Same value columns, so one engine and one writer serve
    every timeframe (docs/decisions.md#D80)."""
    time_col = Column("hour", TS, False) if hourly else Column("date", DATE, False)
    cols = tuple(time_col if c.name == "date" else c for c in table.columns)
    if extra:
        audit_at = next(i for i, c in enumerate(cols) if c.name == "updated_at")
        cols = cols[:audit_at] + extra + cols[audit_at:]
    key = tuple(time_col.name if k == "date" else k for k in table.key)
    indexes = tuple(tuple(time_col.name if c == "date" else c for c in ix) for ix in table.indexes)
    return Table(
        name,
        cols,
        key=key,
        date_column=time_col.name,
        indexes=indexes,
        audit=table.audit,
        partitionable=True,
        partition_unit="month" if hourly else "year",
    )


HOURLY_MARKET_DATA = _retimed(DAILY_MARKET_DATA, "hourly_market_data", hourly=True)
WEEKLY_MARKET_DATA = _retimed(
    DAILY_MARKET_DATA,
    "weekly_market_data",
    hourly=False,
    extra=(Column("bar_days", SMALLINT, False),),  # days the week had (1..7): a gap is never filled
)
HOURLY_TECHNICAL_INDICATORS = _retimed(DAILY_TECHNICAL_INDICATORS, "hourly_technical_indicators", hourly=True)
WEEKLY_TECHNICAL_INDICATORS = _retimed(DAILY_TECHNICAL_INDICATORS, "weekly_technical_indicators", hourly=False)
HOURLY_TRADING_SIGNALS = _retimed(TRADING_SIGNALS, "hourly_trading_signals", hourly=True)
WEEKLY_TRADING_SIGNALS = _retimed(TRADING_SIGNALS, "weekly_trading_signals", hourly=False)
TIMEFRAME_TABLES = (
    HOURLY_MARKET_DATA,
    WEEKLY_MARKET_DATA,
    HOURLY_TECHNICAL_INDICATORS,
    WEEKLY_TECHNICAL_INDICATORS,
    HOURLY_TRADING_SIGNALS,
    WEEKLY_TRADING_SIGNALS,
)


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        COINS,
        COIN_CATEGORIES,
        DAILY_MARKET_DATA,
        MARKET_SNAPSHOTS,
        DAILY_TECHNICAL_INDICATORS,
        TRADING_SIGNALS,
        INDEX_MONTHLY_CONSTITUENTS,
        DAILY_INDEX_VALUES,
        INDEX_TURNOVER,
        INDEX_DEFINITIONS,
        DATA_QUALITY_EVENTS,
        INGESTION_WATERMARKS,
        PIPELINE_RUNS,
        PIPELINE_STEPS,
        RAW_RESPONSES,
        KV_STATE,
        PRICE_TICKS,
        LATEST_PRICES,
        COIN_DETAILS_HISTORY,
        *TIMEFRAME_TABLES,
    )
}


def create_table_sql(table: Table, *, partitioned: bool = False) -> str:
    parts = []
    for c in table.columns:
        spec = f"{quote(c.name)} {c.type}"
        if not c.nullable:
            spec += " NOT NULL"
        if c.default:
            spec += f" DEFAULT {c.default}"
        parts.append(spec)
    pk = table.primary_key or table.key
    parts.append(f"PRIMARY KEY ({', '.join(quote(k) for k in pk)})")
    if pk != table.key:
        parts.append(f"UNIQUE ({', '.join(quote(k) for k in table.key)})")
    body = ",\n    ".join(parts)
    tail = f" PARTITION BY RANGE ({quote(table.date_column or 'date')})" if partitioned and table.partitionable else ""
    return f"CREATE TABLE IF NOT EXISTS {table.name} (\n    {body}\n){tail}"


def year_partitions_sql(table: Table, first_year: int, last_year: int) -> list[str]:
    """One partition per calendar year plus a DEFAULT partition, so no date can fall outside the layout."""
    out = [
        f"CREATE TABLE IF NOT EXISTS {table.name}_y{y} PARTITION OF {table.name} "
        f"FOR VALUES FROM ('{y}-01-01') TO ('{y + 1}-01-01')"
        for y in range(first_year, last_year + 1)
    ]
    out.append(f"CREATE TABLE IF NOT EXISTS {table.name}_default PARTITION OF {table.name} DEFAULT")
    return out


def month_partitions_sql(table: Table, first: tuple[int, int], last: tuple[int, int]) -> list[str]:
    """One partition per calendar month (UTC) plus a DEFAULT partition, for the hourly tables."""
    out = []
    y, m = first
    while (y, m) <= last:
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        out.append(
            f"CREATE TABLE IF NOT EXISTS {table.name}_m{y}{m:02d} PARTITION OF {table.name} "
            f"FOR VALUES FROM ('{y}-{m:02d}-01 00:00:00+00') TO ('{ny}-{nm:02d}-01 00:00:00+00')"
        )
        y, m = ny, nm
    out.append(f"CREATE TABLE IF NOT EXISTS {table.name}_default PARTITION OF {table.name} DEFAULT")
    return out


def create_index_sql(table: Table) -> list[str]:
    out = []
    for cols in table.indexes:
        name = f"idx_{table.name}_{'_'.join(cols)}"
        out.append(f"CREATE INDEX IF NOT EXISTS {name} ON {table.name} ({', '.join(quote(c) for c in cols)})")
    return out


_RESERVED = {"date", "hour", "open", "close", "high", "low", "key", "value", "signal", "rank", "month", "year", "field"}


def quote(name: str) -> str:
    return f'"{name}"' if name in _RESERVED else name
