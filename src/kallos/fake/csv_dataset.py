"""A dataset from folders of CoinGecko CSV exports (``<symbol>-usd-max.csv``: snapped_at, price, market_cap,
total_volume), optionally with exchange daily OHLC bars (CryptoDataDownload format) beside them.

docs/decisions.md#D10: the coin id comes from a mapping file (symbol, coingecko_id, name, categories) when given,
else it is the lower-cased text before ``-usd-max``; several folders are united per coin (overlapping rows are
identical; the later folder wins if not). Rows are served as they are: off-midnight snapshots keep their time,
missing days stay missing, zero and empty market caps stay 0 and null. A series that ends more than 30 days
before now is delisted. Intraday values (hourly, 5-minutely) are interpolated between the daily values: they
are synthetic, and the 00:00 values are the daily ones.

Exchange bars (``ohlc=`` files or folders; by default any other CSV file beside the exports that parses as
bars) are labelled by their open day D and close at D+1 00:00, so they are served as the daily candle
of day D+1 (docs/decisions.md#D2); their own open/high/low/close are kept together, never mixed with the closes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kallos.errors import InputError
from kallos.fake.dataset import DAY_MS, CoinInfo, Dataset, default_now_for

_SUFFIX = "-usd-max.csv"


def _as_paths(value: str | Path | Sequence[str | Path] | None) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [Path(value)]
    return [Path(v) for v in value]


def read_mapping(path: str | Path) -> dict[str, dict[str, object]]:
    """symbol -> {"id", "name", "categories"} from a coingecko_csv_ids.csv-style file."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"symbol", "coingecko_id"} - set(frame.columns)
    if missing:
        raise InputError(f"mapping file lacks columns {sorted(missing)}", path=str(path))
    out: dict[str, dict[str, object]] = {}
    for row in frame.to_dict("records"):
        cats = tuple(
            c.strip() for c in str(row.get("categories", "")).replace("|", ";").split(";") if c.strip()
        )
        out[str(row["symbol"]).strip().lower()] = {
            "id": str(row["coingecko_id"]).strip(),
            "name": str(row.get("name") or row["coingecko_id"]).strip(),
            "categories": cats,
        }
    return out


def _read_export(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    needed = {"snapped_at", "price", "market_cap", "total_volume"}
    if not needed <= set(frame.columns):
        raise InputError(f"not a CoinGecko export (needs {sorted(needed)})", path=str(path))
    stamps = pd.to_datetime(
        frame["snapped_at"].astype(str).str.replace(" UTC", "", regex=False), utc=True, errors="coerce"
    )
    ms = ((stamps - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(milliseconds=1)).where(
        stamps.notna()
    )
    out = pd.DataFrame(
        {
            "ms": ms,
            "price": pd.to_numeric(frame["price"], errors="coerce"),
            "market_cap": pd.to_numeric(frame["market_cap"], errors="coerce"),
            "total_volume": pd.to_numeric(frame["total_volume"], errors="coerce"),
        }
    )
    out = out[out["ms"].notna() & out["price"].notna()].copy()
    out["ms"] = out["ms"].astype("int64")
    out["day"] = out["ms"] // DAY_MS
    return out


def _read_bars(path: Path) -> tuple[str, pd.DataFrame] | None:
    """(base symbol, frame of day/open/high/low/close) for a USD-quoted CryptoDataDownload file, else None."""
    try:
        with path.open() as fh:
            lines = fh.readlines()
    except (OSError, UnicodeDecodeError):
        return None
    start = next((i for i, line in enumerate(lines) if line.lower().startswith("unix")), None)
    if start is None:
        return None
    from io import StringIO

    frame = pd.read_csv(StringIO("".join(lines[start:])))
    cols = {c.lower(): c for c in frame.columns}
    if not {"date", "symbol", "open", "high", "low", "close"} <= set(cols):
        return None
    symbol = str(frame[cols["symbol"]].iloc[0]) if len(frame) else ""
    base, _, quote = symbol.partition("/")
    if quote.upper() != "USD":
        return None
    day = pd.to_datetime(frame[cols["date"]], errors="coerce").dt.normalize()
    out = pd.DataFrame(
        {
            "day": (day - pd.Timestamp("1970-01-01")).dt.days,
            "open": pd.to_numeric(frame[cols["open"]], errors="coerce"),
            "high": pd.to_numeric(frame[cols["high"]], errors="coerce"),
            "low": pd.to_numeric(frame[cols["low"]], errors="coerce"),
            "close": pd.to_numeric(frame[cols["close"]], errors="coerce"),
        }
    ).dropna(subset=["day"])
    out["day"] = out["day"].astype("int64")
    out = out.drop_duplicates("day", keep="first").sort_values("day")
    return base.lower(), out


def load_csv_dataset(
    folders: str | Path | Sequence[str | Path],
    mapping: str | Path | None = None,
    ohlc: str | Path | Sequence[str | Path] | None = None,
    now: dt.datetime | None = None,
) -> Dataset:
    """Build a servable dataset from CoinGecko CSV exports (see the module docstring for the rules)."""
    folder_list = _as_paths(folders)
    names = read_mapping(mapping) if mapping is not None else {}
    per_coin: dict[str, list[pd.DataFrame]] = {}
    symbols: dict[str, str] = {}
    beside: list[Path] = []  # other CSV files in the folders: exchange bars when they parse as such
    for folder in folder_list:
        if not folder.is_dir():
            raise InputError("CSV dataset folder not found", path=str(folder))
        for path in sorted(folder.iterdir()):
            if not path.name.lower().endswith(_SUFFIX):
                if path.suffix.lower() == ".csv":
                    beside.append(path)
                continue
            symbol = path.name[: -len(_SUFFIX)].lower()
            coin_id = str(names[symbol]["id"]) if symbol in names else symbol
            per_coin.setdefault(coin_id, []).append(_read_export(path))
            symbols[coin_id] = symbol
    if not per_coin:
        raise InputError("no <symbol>-usd-max.csv files found", path=", ".join(map(str, folder_list)))

    series = {}
    for coin_id, frames in per_coin.items():
        merged = pd.concat(frames, ignore_index=True).drop_duplicates("day", keep="last").sort_values("day")
        series[coin_id] = merged
    start_day = min(int(s["day"].iloc[0]) for s in series.values())
    end_day = max(int(s["day"].iloc[-1]) for s in series.values())
    n_days = end_day - start_day + 2
    coin_ids = sorted(series)
    n = len(coin_ids)
    price = np.full((n, n_days), np.nan)
    cap = np.full((n, n_days), np.nan)
    vol = np.full((n, n_days), np.nan)
    offset = np.zeros((n, n_days), dtype=np.int64)
    present = np.zeros((n, n_days), dtype=bool)
    first = np.zeros(n, dtype=np.int64)
    last = np.zeros(n, dtype=np.int64)
    coins = []
    for i, coin_id in enumerate(coin_ids):
        s = series[coin_id]
        k = s["day"].to_numpy() - start_day
        price[i, k] = s["price"].to_numpy()
        cap[i, k] = s["market_cap"].to_numpy()
        vol[i, k] = s["total_volume"].to_numpy()
        offset[i, k] = s["ms"].to_numpy() - s["day"].to_numpy() * DAY_MS
        present[i, k] = True
        f, lst = int(k[0]), int(k[-1])
        life = np.arange(f, lst + 1)
        gaps = life[~present[i, life]]
        if gaps.size:  # the path needs values on missing days: interpolate them (never published)
            have = life[present[i, life]]
            for arr in (price, vol):
                arr[i, gaps] = np.interp(gaps, have, arr[i, have])
            finite = have[np.isfinite(cap[i, have])]
            if finite.size:
                cap[i, gaps] = np.interp(gaps, finite, cap[i, finite])
        if lst == end_day - start_day:  # still trading at the end: hold the last values until now
            price[i, lst + 1], cap[i, lst + 1], vol[i, lst + 1] = price[i, lst], cap[i, lst], vol[i, lst]
            lst += 1
        first[i], last[i] = f, lst
        info = names.get(symbols[coin_id], {})
        coins.append(
            CoinInfo(
                id=coin_id,
                symbol=symbols[coin_id],
                name=str(info.get("name", coin_id.replace("-", " ").title())),
                categories=tuple(info.get("categories", ())),  # type: ignore[arg-type]
                platforms={"": ""},
                image_id=i + 1,
            )
        )
    ds = Dataset(
        coins=coins,
        start_day=start_day,
        price=price,
        market_cap=cap,
        volume=vol,
        present=present,
        first=first,
        last=last,
        default_now=now or default_now_for(end_day),
        ts_offset_ms=offset,
        description=f"CoinGecko CSV exports from {', '.join(str(f) for f in folder_list)}",
    )
    bar_paths = _as_paths(ohlc) if ohlc is not None else beside
    if bar_paths:
        _attach_bars(ds, bar_paths, {sym: str(v["id"]) for sym, v in names.items()})
    return ds


def _attach_bars(ds: Dataset, folders: list[Path], symbol_to_id: dict[str, str]) -> None:
    best: dict[str, pd.DataFrame] = {}
    for folder in folders:
        files = sorted(folder.glob("*.csv")) if folder.is_dir() else [folder]
        for path in files:
            got = _read_bars(path)
            if got is None:
                continue
            base, bars = got
            coin_id = symbol_to_id.get(base, base)
            if coin_id in ds.index and (coin_id not in best or len(bars) > len(best[coin_id])):
                best[coin_id] = bars
    ds.ohlc_coins = set(best)
    for coin_id, bars in best.items():
        c = ds.index[coin_id]
        k = bars["day"].to_numpy() - ds.start_day + 1  # bar of day D = candle closing at D+1 00:00
        ok = (k >= 0) & (k < ds.n_days)
        for col in ("open", "high", "low", "close"):
            ds.ohlc[col][c, k[ok]] = bars[col].to_numpy()[ok]
