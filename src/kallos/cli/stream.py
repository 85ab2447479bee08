"""`kallos stream`: real-time prices from CoinGecko's WebSocket API into the store (docs/streaming.md)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import typer

from kallos.cli.coins import COINS_OPTION, TOP_OPTION
from kallos.cli.common import DB_OPTION, NOW_OPTION, console, open_settings_store, parse_coins, setup
from kallos.errors import UsageError

if TYPE_CHECKING:  # loaded when a command runs (docs/decisions.md#D113)
    from kallos.settings import Settings

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(value: str | None) -> float | None:
    """`90` (seconds), `30s`, `5m`, `2h`, `1d`, `1h30m` -> seconds."""
    if value is None:
        return None
    text = value.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        parts = _PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise typer.BadParameter(
                f"{value!r} is not a duration (e.g. 90, 30s, 5m, 2h, 1h30m)", param_hint="--for"
            ) from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise typer.BadParameter("the duration must be positive", param_hint="--for")
    return seconds


def resolve_coins(settings: Settings, coins: list[str] | None, top: int | None) -> list[str]:
    """The coins to stream: `--coins` (each must be in `coins`), `--top N` (today's ranking from /coins/markets,
    as for backfills), or every tracked coin."""
    from kallos.coingecko import CoinGeckoClient
    from kallos.ingest.select import top_coins, tracked_coins

    async def go() -> list[str]:
        with open_settings_store(settings) as store:
            store.init()
            if top is not None:
                async with CoinGeckoClient.from_settings(settings) as client:
                    return await top_coins(store, client, top)
            if coins is None:
                return tracked_coins(store, active_only=True)
            known = store.coin_map(refresh=True)
            unknown = [c for c in coins if c not in known]
            if unknown:
                raise UsageError(
                    f"unknown coin id(s): {', '.join(unknown)}; use CoinGecko ids (run `kallos coins sync` first)"
                )
            return coins

    import asyncio

    return asyncio.run(go())


def register(app: typer.Typer) -> None:
    @app.command("stream")
    def stream_cmd(
        coins: str | None = COINS_OPTION,
        top: int | None = TOP_OPTION,
        duration: str | None = typer.Option(
            None, "--for", help="How long to stream (90, 30s, 5m, 2h, 1h30m); default: until SIGINT/SIGTERM."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the final figures as one JSON object."),
        database_url: str | None = DB_OPTION,
        now: str | None = NOW_OPTION,
    ) -> None:
        """Stream real-time prices (CGSimplePrice; paid plans) into price_ticks and latest_prices."""
        from kallos.stream.run import check_stream_settings, stream_prices

        if coins and top:
            raise typer.BadParameter("give either --coins or --top", param_hint="--coins")
        seconds = parse_duration(duration)
        settings = setup(now=now, database_url=database_url)
        check_stream_settings(settings)  # before any network: plan, key, URL
        chosen = resolve_coins(settings, parse_coins(coins), top)
        from kallos.stream.run import StreamOptions

        options = StreamOptions.from_settings(settings, duration=seconds)
        import asyncio

        stats = asyncio.run(stream_prices(settings, chosen, options=options))
        if as_json:
            typer.echo(json.dumps(stats.as_dict(), sort_keys=True))
            return
        lat = stats.latency_ms
        console.print(
            f"stream: {stats.coins} coins on {stats.sockets} socket(s) for {stats.seconds:.1f} s; "
            f"received {stats.received}, stored {stats.stored}, replays dropped {stats.replays_dropped}, "
            f"malformed {stats.malformed}, reconnects {stats.reconnects}"
            + (f"; latency p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms" if lat else "")
        )
