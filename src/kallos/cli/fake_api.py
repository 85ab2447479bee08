"""`kallos fake-api serve`: the fake CoinGecko server as a process (the offline demo, users' own tests)."""

from __future__ import annotations

import datetime as dt
import signal
import sys
from pathlib import Path
from typing import Any

import typer

from kallos.errors import ConfigError, InputError

fake_app = typer.Typer(
    help="A fake CoinGecko API v3 server on loopback (see docs/fake-server.md).", no_args_is_help=True
)


def _dataset(
    spec: str, seed: int, n_coins: int, start: str, end: str, mapping: Path | None, ohlc_dir: Path | None
) -> Any:
    from kallos.fake import SimulatedMarket, load_csv_dataset

    if spec == "simulated":
        return SimulatedMarket(seed=seed, n_coins=n_coins, start=start, end=end)
    folders = [Path(p) for p in spec.split(",") if p]
    for folder in folders:
        if not folder.is_dir():
            raise InputError(
                "--dataset must be 'simulated' or CSV export folders (comma-separated)", path=str(folder)
            )
    return load_csv_dataset(folders, mapping=mapping, ohlc=ohlc_dir)


@fake_app.command("serve")
def serve(
    port: int = typer.Option(8000, "--port", help="TCP port (0 = any free port; the URL is printed)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (loopback by default)."),
    dataset: str = typer.Option(
        "simulated",
        "--dataset",
        help="'simulated' or folder(s) of <symbol>-usd-max.csv exports, comma-separated.",
    ),
    plan: str = typer.Option("pro", "--plan", help="public | demo | pro: which keys and limits to enforce."),
    api_key: str | None = typer.Option(
        None, "--api-key", help="Accept only this key (default: any non-empty key)."
    ),
    keys_file: str | None = typer.Option(
        None, "--keys-file", help="Keys and their plans: JSON {key: plan} or lines 'key plan'."
    ),
    rate_limit: int | None = typer.Option(
        None, "--rate-limit", help="Calls per sliding 60 s (default: none)."
    ),
    faults: str | None = typer.Option(
        None,
        "--faults",
        help="Rates '429=0.1,5xx=0.05,cloudflare=0.01,truncated=0.01,slow=0.01' "
        "or a script 'script:429,503,-'.",
    ),
    slow_seconds: float = typer.Option(2.0, "--slow-seconds", help="How long a 'slow' fault sleeps."),
    fault_seed: int = typer.Option(0, "--fault-seed", help="Seed of the fault rates."),
    now: str | None = typer.Option(
        None, "--now", help="The server's clock (ISO 8601; default: dataset end + 15 h)."
    ),
    seed: int = typer.Option(7, "--seed", help="Simulated market: seed."),
    n_coins: int = typer.Option(60, "--n-coins", help="Simulated market: number of coins."),
    start: str = typer.Option("2014-01-01", "--start", help="Simulated market: first day."),
    end: str = typer.Option("2024-12-31", "--end", help="Simulated market: last published day."),
    mapping: str | None = typer.Option(None, "--mapping", help="CSV datasets: symbol -> CoinGecko id file."),
    ohlc_dir: str | None = typer.Option(
        None, "--ohlc-dir", help="CSV datasets: exchange daily OHLC bars folder."
    ),
    ws_port: int | None = typer.Option(
        None, "--ws-port", help="Also serve the WebSocket price stream on this port (0 = any free port)."
    ),
    ws_rate: float = typer.Option(
        10.0, "--ws-rate", help="Stream: updates per second per socket (0 = as fast as it can)."
    ),
) -> None:
    """Serve the fake API until interrupted; prints the base URL and the server's now."""
    from kallos.fake import FakeCoinGecko, Faults

    if plan not in ("public", "demo", "pro"):
        raise ConfigError("--plan must be public, demo or pro", setting="--plan")
    try:
        fault_cfg = Faults.parse(faults, slow_seconds=slow_seconds, seed=fault_seed) if faults else None
    except ValueError as exc:
        raise ConfigError(str(exc), setting="--faults") from None
    now_dt = None
    if now:
        try:
            now_dt = dt.datetime.fromisoformat(now.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError("--now must be an ISO 8601 time", setting="--now") from None
        if now_dt.tzinfo is None:
            now_dt = now_dt.replace(tzinfo=dt.UTC)
    keys = None
    if keys_file is not None:
        from kallos.fake.server import load_keys_file

        try:
            keys = load_keys_file(keys_file)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the key file: {exc}", setting="--keys-file") from None
    try:
        data = _dataset(
            dataset,
            seed,
            n_coins,
            start,
            end,
            Path(mapping) if mapping else None,
            Path(ohlc_dir) if ohlc_dir else None,
        )
        srv = FakeCoinGecko(
            dataset=data,
            plan=plan,
            api_key=api_key,
            rate_limit_per_minute=rate_limit,
            faults=fault_cfg,
            host=host,
            port=port,
            now=now_dt,
            keys=keys,
        )
    except ValueError as exc:  # a bad date range, a clock outside the dataset
        raise ConfigError(f"cannot start the fake server: {exc}") from None

    def _stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    srv.start()
    stream = None
    if ws_port is not None:
        from kallos.fake.stream import FakeStream

        stream = FakeStream(
            data, plan, api_key=api_key, keys=keys, host=host, port=ws_port, rate=ws_rate, record=False
        ).start()
    typer.echo(f"fake CoinGecko ({plan}) serving {srv.url}  now={srv.now_header}  coins={len(data.coins)}")
    typer.echo(f"KALLOS_COINGECKO_BASE_URL={srv.url}")
    typer.echo(f"KALLOS_NOW={srv.now_header}")
    if stream is not None:
        typer.echo(f"KALLOS_COINGECKO_WS_URL={stream.url}")
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if stream is not None:
            stream.stop()
        srv.stop()


def register(app: typer.Typer) -> None:
    app.add_typer(fake_app, name="fake-api")
