"""`kallos demo`: the whole pipeline offline, on a fresh machine, in under two minutes.

It starts the fake CoinGecko server in-process on a free loopback port, serving the built-in simulated market
on the pro plan (full history and OHLC) with a high rate limit (docs/decisions.md#D27: the pipeline, not the
pacing, should dominate), pins the clock to the server's now (docs/decisions.md#D36), runs the backfill pipeline
into a fresh DuckDB file, and writes the HTML report. Nothing touches the network beyond 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kallos import clock
from kallos.log import get_logger
from kallos.pipeline.contract import Progress
from kallos.pipeline.progress import as_progress
from kallos.pipeline.run import RunOptions, run_pipeline
from kallos.pipeline.runner import Reporter, RunSummary
from kallos.settings import Settings, load_settings

log = get_logger(__name__)

DEMO_DB = "demo.duckdb"
DEMO_API_KEY = "demo-key"
DEMO_RATE_LIMIT = 100_000
"""Requests per minute, for the fake server and the client alike (the real pro plan allows 500-1000)."""


@dataclass(frozen=True)
class DemoMarket:
    """The simulated market of the demo: sized so the demo stays under two minutes on two cores."""

    seed: int = 7
    n_coins: int = 50
    start: str = "2018-01-01"
    end: str = "2025-06-30"


@dataclass
class DemoResult:
    summary: RunSummary
    report: Path
    database_url: str
    metrics: dict[str, Any] | None
    server_now: dt.datetime
    market: DemoMarket
    extra: dict[str, Any] = field(default_factory=dict)


def fresh_database(out_dir: Path) -> Path:
    """The demo's own DuckDB file, removed first so every demo starts empty (only files the demo created)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    db = out_dir / DEMO_DB
    for suffix in ("", ".wal", ".pipeline.lock.owner"):
        target = db.with_name(db.name + suffix)
        target.unlink(missing_ok=True)
    return db


def demo_settings(db: Path, server_url: str, now: dt.datetime, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"duckdb:///{db.resolve()}",
        "coingecko_base_url": server_url,
        "coingecko_plan": "pro",
        "coingecko_api_key": DEMO_API_KEY,
        "rate_limit_per_minute": DEMO_RATE_LIMIT,
        "now": now,
        "index_base_date": None,
        "pg_partition_by_year": False,  # the demo's store is DuckDB, whatever the environment says
    }
    values.update(overrides)
    return load_settings(**values)


def run_demo(
    out_dir: Path | str,
    *,
    market: DemoMarket | None = None,
    reporter: Reporter | None = None,
    progress: bool | Progress = False,
    **overrides: Any,
) -> DemoResult:
    """Run the offline demo into `out_dir` (the database and `kallos_report.html`); return what it made."""
    from kallos.fake import FakeCoinGecko, SimulatedMarket
    from kallos.pipeline.report import write_report

    out = Path(out_dir)
    market = market or DemoMarket()
    db = fresh_database(out)
    dataset = SimulatedMarket(seed=market.seed, n_coins=market.n_coins, start=market.start, end=market.end)
    server = FakeCoinGecko(
        dataset=dataset, plan="pro", api_key=DEMO_API_KEY, rate_limit_per_minute=DEMO_RATE_LIMIT, port=0
    )
    previous_now = clock.utcnow() if _pinned() else None
    server.start()
    try:
        clock.set_now(server.now)
        settings = demo_settings(db, server.url, server.now, **overrides)
        log.info(
            "demo started",
            extra={"fake_server": server.url, "database": str(db), "now": server.now.isoformat()},
        )
        summary = run_pipeline(
            settings,
            RunOptions(mode="backfill", top=market.n_coins, include_inactive=True),
            command="demo",
            reporter=reporter,
            progress=as_progress(progress),
        )
        from kallos.store import open_store

        store = open_store(settings.database_url, partitioned=settings.partition_request)
        try:
            extra = {
                "market": f"simulated (seed {market.seed}, {market.n_coins} coins, "
                f"{market.start} .. {market.end})",
                "fake server": f"{server.url} (pro plan, {DEMO_RATE_LIMIT:,} requests/min)",
                "now (fake server)": server.now.isoformat(),
                "database": str(db),
            }
            report, metrics = write_report(
                store,
                out,
                summary=summary,
                title="Kallos demo report",
                extra=extra,
                min_coverage=settings.min_coverage,
            )
        finally:
            store.close()
    finally:
        server.stop()
        clock.set_now(previous_now)
    return DemoResult(summary, report, settings.database_url, metrics, server.now, market, extra)


def _pinned() -> bool:
    from kallos import clock as c

    return c._override is not None  # noqa: SLF001 - restore the caller's pinned clock afterwards
