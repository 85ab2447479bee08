"""Indicator engine benchmark (docs/benchmarks.md, section "Indicators"); not a test, never run by pytest.

    .venv/bin/python bench/bench_indicators.py [--coins 1000] [--days 3000] [--repeat 1]
        [--pandas-ta-python /path/to/python3.12]

Compares, for the same output table (a long frame: coin_id, date, ohlc_source and all 45 columns) built from
the same long bars frame:
- baseline: a plain loop over coins on one core, every TA-Lib column with its own TA-Lib call and the rest with
  NumPy formulas (bench/numpy_formulas.py, the engine's formulas before its fused kernels; docs/decisions.md#D26),
  assembled into the table at the end;
- `kallos.indicators.compute_indicators` (the public frame API) on one core, and `generate_signals` on its
  output (rows/s of both);
- the indicator step's compute on 2 workers: the step's own compute loop (`compute_jobs`) over batches of 100
  coins through the step's executor (`LocalExecutor`, forkserver processes started in the timing, frames
  through shared memory both ways, as in the step), and on 2 threads (`KALLOS_EXECUTOR=threads`);
- pandas-ta under a Python >= 3.12 interpreter that has it, else "not measured".
Wall and CPU seconds are both printed, and the peak RSS of each phase against the output table's own size.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np
import numpy_formulas as nf
import pandas as pd
import talib

from kallos.indicators import compute_indicators
from kallos.indicators.contract import OUTPUT_COLUMNS
from kallos.indicators.engine import tune_allocator
from kallos.indicators.step import _PRELOAD as PRELOAD
from kallos.indicators.step import BATCH_COINS, _Job, compute_jobs
from kallos.scale.executor import ThreadExecutor, get_executor
from kallos.signals import generate_signals


def make_panel(coins: int, days: int, seed: int = 42) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    walk = np.exp(np.cumsum(rng.normal(0, 0.05, (coins, days)), axis=1))
    close = 10 ** rng.uniform(-4, 4, (coins, 1)) * walk
    spread = np.abs(rng.normal(0, 0.03, (coins, days))) + 1e-4
    high = close * (1 + spread * rng.uniform(0.2, 1, (coins, days)))
    low = close * (1 - spread * rng.uniform(0.2, 1, (coins, days)))
    volume = rng.lognormal(12, 2, (coins, days))
    volume[rng.random((coins, days)) < 0.01] = 0.0
    return {"close": close, "high": high, "low": low, "volume": volume}


def talib_columns(h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray) -> dict[str, np.ndarray]:
    """Every TA-Lib column of the contract, each with its own TA-Lib call (what "looping TA-Lib" means)."""
    cols = {
        "ema_10": talib.EMA(c, 10),
        "ema_50": talib.EMA(c, 50),
        "sma_20": talib.SMA(c, 20),
        "sma_50": talib.SMA(c, 50),
        "sma_200": talib.SMA(c, 200),
        "rsi_14": talib.RSI(c, 14),
        "roc_10": talib.ROC(c, 10),
        "obv": talib.OBV(c, v),
        "plus_di_14": talib.PLUS_DI(h, lo, c, 14),
        "minus_di_14": talib.MINUS_DI(h, lo, c, 14),
        "adx_14": talib.ADX(h, lo, c, 14),
        "adxr_14": talib.ADXR(h, lo, c, 14),
        "atr_14": talib.ATR(h, lo, c, 14),
        "natr_14": talib.NATR(h, lo, c, 14),
        "willr_14": talib.WILLR(h, lo, c, 14),
        "cci_20": talib.CCI(h, lo, c, 20),
        "mfi_14": talib.MFI(h, lo, c, v, 14),
    }
    cols["macd_line"], cols["macd_signal"], cols["macd_histogram"] = talib.MACD(c, 12, 26, 9)
    cols["bb_upper"], cols["bb_mid"], cols["bb_lower"] = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    ema20, atr10 = talib.EMA(c, 20), talib.ATR(h, lo, c, 10)
    cols["kc_upper"], cols["kc_mid"], cols["kc_lower"] = ema20 + 2 * atr10, ema20, ema20 - 2 * atr10
    cols["stoch_k"], cols["stoch_d"] = talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)
    return cols


def bars_frame(p: dict[str, np.ndarray]) -> pd.DataFrame:
    """The panel as the long bars frame users pass (sorted by coin and date, as read from the store)."""
    n_coins, n_days = p["close"].shape
    names = np.array([f"coin-{i:05d}" for i in range(n_coins)], dtype=object)
    return pd.DataFrame(
        {
            "coin_id": np.repeat(names, n_days),
            "date": np.tile(pd.date_range("2017-01-01", periods=n_days).to_numpy(), n_coins),
            "open": p["close"].ravel(),
            "high": p["high"].ravel(),
            "low": p["low"].ravel(),
            "close": p["close"].ravel(),
            "volume": p["volume"].ravel(),
        }
    )


def baseline(bars: pd.DataFrame) -> pd.DataFrame:
    """Per coin: TA-Lib for its columns, NumPy formulas on a one-row panel for the rest; one table at the end."""
    coins = bars["coin_id"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, coins[1:] != coins[:-1], True])
    arrays = {name: bars[name].to_numpy() for name in ("close", "high", "low", "volume")}
    out = {name: np.empty(len(bars)) for name in OUTPUT_COLUMNS}
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        c, h, lo, v = (arrays[name][a:b] for name in ("close", "high", "low", "volume"))
        row = {name: values[None, :] for name, values in talib_columns(h, lo, c, v).items()}
        c2, h2, l2, v2 = c[None, :], h[None, :], lo[None, :], v[None, :]
        row["kst"], row["kst_signal"] = nf.kst(c2)
        row["ui_14"] = nf.ulcer_index(c2)
        row["realized_vol_30"] = nf.realized_vol(c2)
        row["bb_width"] = nf.bb_width(row["bb_upper"], row["bb_mid"], row["bb_lower"])
        row["cmf_20"] = nf.cmf(h2, l2, c2, v2)
        row["chop_14"] = nf.choppiness(h2, l2, c2)
        row.update(nf.close_composites(c2, v2, row))
        row.update(nf.high_low_composites(row))
        for name in OUTPUT_COLUMNS:
            out[name][a:b] = row[name][0]
    return pd.DataFrame(
        {"coin_id": coins, "date": bars["date"].to_numpy(), "ohlc_source": "candles"} | out
    )


def full_jobs(bars: pd.DataFrame) -> list[_Job]:
    """The step's jobs for a full recompute: 100-coin batches of bars (what `_prepare` reads from the store;
    built outside the timing, as the store reads are not the compute)."""
    coins = bars["coin_id"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, coins[1:] != coins[:-1], True])
    cuts = bounds[::BATCH_COINS].tolist() + ([bounds[-1]] if (len(bounds) - 1) % BATCH_COINS else [])
    jobs = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        part = bars.iloc[a:b].reset_index(drop=True)
        jobs.append(_Job(part, {}, {}, {}, dict.fromkeys(coins[a:b].tolist(), "full")))
    return jobs


def step_workers(jobs: list[_Job], workers: int) -> tuple[int, float]:
    """The indicator step's compute, as the step runs it: its executor (`LocalExecutor` with `workers`
    forkserver processes, started here as the step starts them) and its compute loop (`compute_jobs`: batches
    and results through shared memory), each batch's rows to write received by this process and dropped (the
    step upserts them). Returns the rows and the CPU seconds of the workers and of the forkserver (they are
    not this process's children, so `os.times` does not count them)."""
    server_before = _cpu_of(_forkserver_pid())
    with get_executor(None, workers=workers, preload=PRELOAD) as ex:
        ex.start()
        rows = sum(len(rows) for _, rows, _ in compute_jobs(ex, iter(jobs), False))
        pool = getattr(ex, "_pool", None)
        pids = list(pool._processes) if pool is not None else []  # type: ignore[attr-defined]
        cpu = sum(_cpu_of(pid) for pid in pids) + _cpu_of(_forkserver_pid()) - server_before
    return rows, cpu


def step_threads(jobs: list[_Job], workers: int) -> int:
    """The indicator step's compute with `KALLOS_EXECUTOR=threads`: the same compute loop, the batches computed
    at the same time by `workers` threads of this process (docs/decisions.md#D125); their CPU is this
    process's."""
    with ThreadExecutor(workers) as ex:
        return sum(len(rows) for _, rows, _ in compute_jobs(ex, iter(jobs), False))


def _forkserver_pid() -> int | None:
    from multiprocessing import forkserver

    return getattr(forkserver._forkserver, "_forkserver_pid", None)


def _cpu_of(pid: int | None) -> float:
    """User + system CPU seconds of a live process (0 when unknown)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _probe(bars: pd.DataFrame, conn) -> None:  # noqa: ANN001
    before = _rss_mb()
    out = compute_indicators(bars)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    conn.send((before, peak, out.memory_usage(deep=False).sum() / 2**20))


def memory_probe(bars: pd.DataFrame) -> tuple[float, float, float]:
    """compute_indicators in a forked child: (RSS before, peak RSS, output table MB) of that child alone."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_probe, args=(bars, child))
    proc.start()
    result = parent.recv()
    proc.join()
    return result


def timed(fn, *args, repeat: int = 1):  # noqa: ANN001, ANN202
    """Best wall time of `repeat` runs, with the CPU time (this process and its children) of that run."""
    best, cpu, result = float("inf"), 0.0, None
    for _ in range(repeat):
        result = None
        t0, c0 = time.perf_counter(), os.times()
        result = fn(*args)
        wall, c1 = time.perf_counter() - t0, os.times()
        if wall < best:
            best = wall
            cpu = (c1.user - c0.user) + (c1.system - c0.system)
            cpu += (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    return best, cpu, result


PANDAS_TA_SCRIPT = r"""
import sys, time, numpy as np, pandas as pd, pandas_ta as ta
coins, days = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(42)
c = 100 * np.exp(np.cumsum(rng.normal(0, 0.05, days)))
h, l, v = c * 1.02, c * 0.98, rng.lognormal(12, 2, days)
df = pd.DataFrame({"open": c, "high": h, "low": l, "close": c, "volume": v})
def one(d):
    d.ta.ema(length=10, append=True); d.ta.ema(length=50, append=True); d.ta.sma(length=20, append=True)
    d.ta.sma(length=50, append=True); d.ta.sma(length=200, append=True); d.ta.rsi(length=14, append=True)
    d.ta.macd(append=True); d.ta.adx(length=14, append=True); d.ta.atr(length=14, append=True)
    d.ta.natr(length=14, append=True); d.ta.bbands(length=20, append=True); d.ta.kc(length=20, append=True)
    d.ta.stoch(append=True); d.ta.willr(length=14, append=True); d.ta.cci(length=20, append=True)
    d.ta.roc(length=10, append=True); d.ta.kst(append=True); d.ta.mfi(length=14, append=True)
    d.ta.cmf(length=20, append=True); d.ta.obv(append=True); d.ta.ui(length=14, append=True)
    d.ta.chop(length=14, append=True)
one(df.copy())  # numba compilation outside the timing
t = time.perf_counter()
for _ in range(coins):
    one(df.copy())
print(time.perf_counter() - t)
"""


def pandas_ta_seconds(coins: int, days: int, python: str | None) -> tuple[float | None, str]:
    """pandas-ta needs Python >= 3.12: time it in such an interpreter (given, or found on PATH)."""
    candidates = [python] if python else [shutil.which(exe) for exe in ("python3.13", "python3.12")]
    for path in filter(None, candidates):
        probe = subprocess.run([path, "-c", "import pandas_ta"], capture_output=True, text=True)
        if probe.returncode != 0:
            continue
        sample = max(1, coins // 20)  # time a sample of coins and scale: pandas-ta is slow
        res = subprocess.run(
            [path, "-c", PANDAS_TA_SCRIPT, str(sample), str(days)], capture_output=True, text=True
        )
        if res.returncode == 0:
            return float(
                res.stdout.strip().splitlines()[-1]
            ) * coins / sample, f"{path}, {sample} coins scaled"
        return None, f"not measured (pandas-ta failed: {res.stderr.strip().splitlines()[-1:]})"
    return None, "not measured (no Python >= 3.12 interpreter with pandas-ta installed)"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--coins", type=int, default=1000)
    ap.add_argument("--days", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument(
        "--pandas-ta-python",
        default=os.environ.get("KALLOS_BENCH_PANDAS_TA_PYTHON"),
        help="A Python >= 3.12 with pandas-ta installed (default: python3.13/python3.12 on PATH).",
    )
    args = ap.parse_args()
    tuned = tune_allocator()  # before anything runs, so the baseline gets the same allocator
    bars = bars_frame(make_panel(args.coins, args.days))
    compute_indicators(bars.iloc[:500])  # numba kernels compiled (or loaded from cache) outside the timing
    print(
        f"bars: {args.coins} coins x {args.days} days, {len(OUTPUT_COLUMNS)} output columns, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, TA-Lib {talib.__version__}, "
        f"allocator tuned: {tuned}, load average {os.getloadavg()[0]:.1f}"
    )
    before, peak, size_mb = memory_probe(bars)
    print(
        f"memory: compute_indicators raised RSS from {before:.0f} MB to a peak of {peak:.0f} MB: "
        f"{peak - before:.0f} MB for an output table of {size_mb:.0f} MB ({(peak - before) / size_mb:.2f}x)"
    )
    t_base, cpu_base, ref = timed(baseline, bars, repeat=args.repeat)
    print(f"baseline (TA-Lib loop + NumPy formulas, 1 core): {t_base:7.2f} s wall, {cpu_base:7.2f} s CPU")
    del ref
    t1, cpu1, out1 = timed(compute_indicators, bars, repeat=args.repeat)
    print(
        f"compute_indicators, 1 core:                      {t1:7.2f} s wall, {cpu1:7.2f} s CPU;"
        f" ratio {t_base / t1:5.2f}x wall, {cpu_base / cpu1:5.2f}x CPU"
    )
    signal_input = out1.assign(close=bars["close"].to_numpy())
    generate_signals(signal_input.iloc[:1000])
    ts, cpus, signals = timed(generate_signals, signal_input, repeat=args.repeat)
    print(
        f"generate_signals on that output, 1 core:         {ts:7.2f} s wall, {cpus:7.2f} s CPU;"
        f" {len(bars) / ts:,.0f} rows/s against compute_indicators' {len(bars) / t1:,.0f} rows/s"
        f" (CPU: {len(bars) / cpus:,.0f} against {len(bars) / cpu1:,.0f}); {len(signals):,} signal rows"
    )
    del signal_input, signals
    ref = baseline(bars)
    for name in OUTPUT_COLUMNS:  # the same table (MFI: window sums vs TA-Lib running sums)
        np.testing.assert_allclose(out1[name], ref[name], rtol=1e-7, atol=1e-7, equal_nan=True, err_msg=name)
    del out1, ref
    jobs = full_jobs(bars)
    for label in ("cold", "warm"):  # cold: the forkserver boots in the timing, as in a fresh `kallos` process
        t2, cpu2, (_, cpu_workers) = timed(step_workers, jobs, 2, repeat=1 if label == "cold" else args.repeat)
        print(
            f"indicator step compute, 2 workers ({label}):        {t2:7.2f} s wall, {cpu2:7.2f} s CPU (parent)"
            f" + {cpu_workers:5.2f} s CPU (workers, forkserver); ratio {t_base / t2:5.2f}x wall"
        )
    t3, cpu3, _ = timed(step_threads, jobs, 2, repeat=args.repeat)
    print(
        f"indicator step compute, 2 threads (KALLOS_EXECUTOR=threads): {t3:7.2f} s wall, {cpu3:7.2f} s CPU;"
        f" ratio {t_base / t3:5.2f}x wall"
    )
    t_pta, how = pandas_ta_seconds(args.coins, args.days, args.pandas_ta_python)
    if t_pta is None:
        print(f"pandas-ta: {how}")
    else:
        print(f"pandas-ta ({how}): {t_pta:8.2f} s; compute_indicators on 1 core is {t_pta / t1:5.1f}x faster")


if __name__ == "__main__":
    main()
