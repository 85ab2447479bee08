"""A seeded, simulated crypto market: the dataset of the offline demo and of most tests.

Nothing here reads real data. The first coins carry real CoinGecko ids (bitcoin, tether, wrapped-bitcoin...)
so that exclusion rules and user code written against real ids work, but every number is simulated; the rest
are invented coins. The market has regimes (bull, bear, calm) shared by all coins through a market factor,
fat-tailed (Student-t) returns, stablecoins on their peg (one algorithmic stablecoin that breaks it and is
delisted), wrapped and staked tokens that track their parent, coins that list late, coins that are delisted
(served only by ``/coins/list?status=inactive``), null and zero market caps, zero volumes and missing days.
Everything is generated vectorized with NumPy from one seed: same arguments, same market.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from kallos.fake.dataset import CoinInfo, Dataset, day_of, default_now_for


@dataclass(frozen=True)
class _Spec:
    id: str
    symbol: str
    name: str
    kind: str  # "coin" | "stable" | "wrapped" | "staked" | "wrapped_staked" | "broken_stable"
    listed: str | None  # ISO date, None = from the start
    delisted: str | None = None
    price0: float = 1.0
    supply0: float = 1e8
    supply1: float = 1e8
    max_supply: float | None = None
    vol: float = 0.05
    beta: float = 1.0
    drift: float = 0.0
    categories: tuple[str, ...] = ()
    parent: str | None = None
    zero_cap_days: int = 0
    null_cap_days: int = 0
    zero_volume_days: int = 0
    shock: tuple[str, float, int] | None = None  # (date, price multiplier, days): a depeg or a one-off pump
    hashing: str | None = None
    block_minutes: int = 0


_L1 = ("cryptocurrency", "layer-1")
_SC = ("smart-contract-platform", "layer-1")
_STABLE = ("stablecoins", "usd-stablecoin")

ROSTER: tuple[_Spec, ...] = (
    _Spec(
        "bitcoin",
        "btc",
        "Bitcoin",
        "coin",
        None,
        price0=800,
        supply0=12.2e6,
        supply1=19.9e6,
        max_supply=21e6,
        vol=0.035,
        beta=1.0,
        drift=0.0012,
        categories=(*_L1, "proof-of-work-pow"),
        zero_volume_days=20,
        hashing="SHA-256",
        block_minutes=10,
    ),
    _Spec(
        "ethereum",
        "eth",
        "Ethereum",
        "coin",
        "2015-08-07",
        price0=2.8,
        supply0=72e6,
        supply1=120e6,
        vol=0.05,
        beta=1.2,
        drift=0.002,
        categories=_SC,
        zero_cap_days=1,
        hashing="Ethash",
    ),
    _Spec("tether", "usdt", "Tether", "stable", "2015-02-25", supply0=1e6, supply1=120e9, categories=_STABLE),
    _Spec(
        "binancecoin",
        "bnb",
        "BNB",
        "coin",
        "2017-07-25",
        price0=0.11,
        supply0=100e6,
        supply1=150e6,
        max_supply=200e6,
        vol=0.05,
        beta=1.0,
        drift=0.002,
        categories=("exchange-based-tokens", "layer-1"),
    ),
    _Spec(
        "ripple",
        "xrp",
        "XRP",
        "coin",
        None,
        price0=0.025,
        supply0=30e9,
        supply1=55e9,
        max_supply=100e9,
        vol=0.05,
        beta=1.0,
        drift=0.0008,
        categories=("cryptocurrency",),
    ),
    _Spec(
        "usd-coin",
        "usdc",
        "USDC",
        "stable",
        "2018-10-08",
        supply0=10e6,
        supply1=40e9,
        categories=_STABLE,
        zero_cap_days=18,
        shock=("2023-03-11", 0.9, 2),
    ),
    _Spec(
        "cardano",
        "ada",
        "Cardano",
        "coin",
        "2017-10-01",
        price0=0.02,
        supply0=26e9,
        supply1=35e9,
        max_supply=45e9,
        vol=0.055,
        beta=1.1,
        drift=0.0008,
        categories=_SC,
    ),
    _Spec(
        "solana",
        "sol",
        "Solana",
        "coin",
        "2020-04-10",
        price0=0.95,
        supply0=200e6,
        supply1=480e6,
        vol=0.06,
        beta=1.3,
        drift=0.003,
        categories=_SC,
    ),
    _Spec(
        "dogecoin",
        "doge",
        "Dogecoin",
        "coin",
        None,
        price0=0.0015,
        supply0=70e9,
        supply1=145e9,
        vol=0.06,
        beta=1.0,
        drift=0.0009,
        categories=("meme-token", "proof-of-work-pow"),
        zero_volume_days=11,
        shock=("2021-01-28", 3.5, 1),
        hashing="Scrypt",
        block_minutes=1,
    ),
    _Spec(
        "staked-ether",
        "steth",
        "Lido Staked Ether",
        "staked",
        "2020-12-22",
        supply0=0.1e6,
        supply1=9.5e6,
        categories=("liquid-staking-tokens",),
        parent="ethereum",
    ),
    _Spec(
        "wrapped-bitcoin",
        "wbtc",
        "Wrapped Bitcoin",
        "wrapped",
        "2019-01-30",
        supply0=100,
        supply1=150e3,
        categories=("wrapped-tokens",),
        parent="bitcoin",
    ),
    _Spec(
        "weth",
        "weth",
        "WETH",
        "wrapped",
        "2018-01-20",
        supply0=1e4,
        supply1=3e6,
        categories=("wrapped-tokens",),
        parent="ethereum",
        null_cap_days=200,
    ),
    _Spec(
        "wrapped-steth",
        "wsteth",
        "Wrapped stETH",
        "wrapped_staked",
        "2021-02-10",
        supply0=1e4,
        supply1=3.5e6,
        categories=("wrapped-tokens", "liquid-staking-tokens"),
        parent="ethereum",
    ),
    _Spec("dai", "dai", "Dai", "stable", "2019-11-22", supply0=50e6, supply1=5e9, categories=_STABLE),
    _Spec(
        "litecoin",
        "ltc",
        "Litecoin",
        "coin",
        None,
        price0=24,
        supply0=25e6,
        supply1=75e6,
        max_supply=84e6,
        vol=0.045,
        beta=1.0,
        drift=0.0003,
        categories=(*_L1, "proof-of-work-pow"),
        hashing="Scrypt",
        block_minutes=3,
    ),
    _Spec(
        "polkadot",
        "dot",
        "Polkadot",
        "coin",
        "2020-08-19",
        price0=2.9,
        supply0=1e9,
        supply1=1.5e9,
        vol=0.055,
        beta=1.2,
        drift=0.0008,
        categories=_SC,
    ),
    _Spec(
        "chainlink",
        "link",
        "Chainlink",
        "coin",
        "2017-11-09",
        price0=0.18,
        supply0=350e6,
        supply1=600e6,
        max_supply=1e9,
        vol=0.055,
        beta=1.1,
        drift=0.0016,
        categories=("oracle", "decentralized-finance-defi"),
    ),
    _Spec(
        "avalanche-2",
        "avax",
        "Avalanche",
        "coin",
        "2020-09-22",
        price0=4.5,
        supply0=100e6,
        supply1=400e6,
        max_supply=720e6,
        vol=0.06,
        beta=1.3,
        drift=0.0012,
        categories=_SC,
    ),
    _Spec(
        "tron",
        "trx",
        "TRON",
        "coin",
        "2017-09-13",
        price0=0.002,
        supply0=65e9,
        supply1=87e9,
        vol=0.05,
        beta=0.9,
        drift=0.001,
        categories=_SC,
    ),
    _Spec(
        "shiba-inu",
        "shib",
        "Shiba Inu",
        "coin",
        "2020-08-01",
        price0=1e-9,
        supply0=390e12,
        supply1=589e12,
        vol=0.09,
        beta=1.4,
        drift=0.004,
        categories=("meme-token",),
        zero_cap_days=274,
    ),
    _Spec(
        "bridged-usdc-polygon-pos-bridge",
        "usdc.e",
        "Bridged USDC (Polygon PoS Bridge)",
        "stable",
        "2021-06-01",
        supply0=100e6,
        supply1=400e6,
        categories=("bridged-tokens", "stablecoins"),
    ),
    _Spec(
        "monero",
        "xmr",
        "Monero",
        "coin",
        None,
        price0=3.5,
        supply0=6e6,
        supply1=18.4e6,
        vol=0.05,
        beta=0.9,
        drift=0.0011,
        categories=("privacy-coins", "proof-of-work-pow"),
        hashing="RandomX",
        block_minutes=2,
    ),
    # Invented coins that die: these appear only with status=inactive once their last day is 30+ days old.
    _Spec(
        "nebulacoin",
        "neb",
        "NebulaCoin",
        "coin",
        "2015-03-01",
        "2019-06-30",
        price0=0.4,
        supply0=50e6,
        supply1=80e6,
        vol=0.08,
        beta=1.1,
        drift=-0.001,
        categories=("cryptocurrency",),
    ),
    _Spec(
        "aurora-cash",
        "arc",
        "Aurora Cash",
        "coin",
        "2017-01-10",
        "2020-03-20",
        price0=0.05,
        supply0=1e9,
        supply1=1.2e9,
        vol=0.09,
        beta=1.2,
        drift=-0.0005,
        categories=("cryptocurrency",),
    ),
    _Spec(
        "terraform-usd",
        "tfusd",
        "TerraForm USD",
        "broken_stable",
        "2020-11-01",
        "2022-06-15",
        supply0=50e6,
        supply1=18e9,
        categories=_STABLE,
    ),
    _Spec(
        "quantum-ledger",
        "qlx",
        "Quantum Ledger",
        "coin",
        "2018-02-01",
        "2023-10-01",
        price0=1.2,
        supply0=300e6,
        supply1=400e6,
        vol=0.08,
        beta=1.2,
        drift=-0.0004,
        categories=("decentralized-finance-defi",),
        null_cap_days=60,
    ),
)

_SYLLABLES = (
    "ka",
    "lo",
    "ra",
    "zen",
    "vo",
    "mi",
    "tor",
    "ex",
    "qua",
    "lum",
    "ny",
    "sol",
    "fi",
    "dra",
    "pix",
    "nor",
    "bel",
    "cy",
    "ta",
    "ve",
    "rin",
    "os",
    "um",
    "chi",
    "ga",
    "tek",
)
_SUFFIXES = ("", "", "", "-network", "-protocol", "-finance", "-token")
_EXTRA_CATEGORIES = (
    "decentralized-finance-defi",
    "gaming",
    "layer-1",
    "smart-contract-platform",
    "oracle",
    "meme-token",
)


def _t_noise(rng: np.random.Generator, shape: tuple[int, ...], df: float = 4.0) -> np.ndarray:
    """Student-t draws scaled to unit variance (fat tails)."""
    return rng.standard_t(df, size=shape) / np.sqrt(df / (df - 2.0))


class SimulatedMarket(Dataset):
    """``SimulatedMarket(seed=7, n_coins=60, start="2014-01-01", end="2024-12-31")``; ``.now`` -> datetime.

    Deterministic for its arguments. ``end`` is the last published day; ``now`` defaults to end + 15 h.
    """

    def __init__(
        self,
        seed: int = 7,
        n_coins: int = 60,
        start: str | dt.date = "2014-01-01",
        end: str | dt.date = "2024-12-31",
        *,
        missing_day_coins: int = 8,
    ) -> None:
        if n_coins < 1:
            raise ValueError("n_coins must be >= 1")
        start_day, end_day = day_of(start), day_of(end)
        if end_day - start_day < 60:
            raise ValueError("the simulated market needs at least 60 days between start and end")
        self.seed = seed
        rng = np.random.default_rng(seed)
        n_days = end_day - start_day + 2  # one hidden day after `end` so the path is defined up to now
        specs = self._specs(rng, n_coins, start_day, end_day)
        n = len(specs)

        # Market factor with regimes: a sticky Markov chain over (calm, bull, bear).
        regime_mu = np.array([0.0003, 0.0030, -0.0030])
        regime_sd = np.array([0.020, 0.032, 0.042])
        stay = 0.994
        u = rng.random(n_days)
        jumps = rng.integers(1, 3, size=n_days)
        regime = np.zeros(n_days, dtype=np.int64)
        for t in range(1, n_days):  # 4k steps of scalar work: cheap
            regime[t] = regime[t - 1] if u[t] < stay else (regime[t - 1] + jumps[t]) % 3
        market = regime_mu[regime] + regime_sd[regime] * _t_noise(rng, (n_days,))
        vol_scale = regime_sd[regime] / 0.03

        vol = np.array([s.vol for s in specs])
        beta = np.array([s.beta for s in specs])
        idio = _t_noise(rng, (n, n_days), df=3.5) * (vol[:, None] * vol_scale[None, :] * 0.8)
        log_ret = beta[:, None] * market + idio

        listed = np.array([s[0] for s in specs_days(specs, start_day, end_day)])
        ended = np.array([s[1] for s in specs_days(specs, start_day, end_day)])
        first = listed - start_day
        last = np.where(ended >= 0, ended - start_day, n_days - 1)
        days = np.arange(n_days)
        alive = (days[None, :] >= first[:, None]) & (days[None, :] <= last[:, None])

        price = np.full((n, n_days), np.nan)
        index = {s.id: i for i, s in enumerate(specs)}
        # Plain coins first (parents of the wrapped ones).
        for i, s in enumerate(specs):
            if s.kind != "coin":
                continue
            life = (days > first[i]) & (days <= last[i])
            r = np.where(life, log_ret[i], 0.0)
            if life.any():  # keep the shocks, set the trend: the coin drifts by `drift` a day on average
                r = np.where(life, r - r[life].mean() + s.drift, 0.0)
            # price0 is the price at the nominal listing: a later range starts further along the trend.
            nominal = day_of(s.listed) if s.listed else day_of("2014-01-01")
            path = np.log(s.price0) + s.drift * max(start_day - nominal, 0) + np.cumsum(r)
            if s.delisted:  # a slow death before delisting
                fade = np.clip((days - (last[i] - 120)) / 120.0, 0, 1)
                path = path - 3.0 * fade
            price[i] = np.exp(path)
        for i, s in enumerate(specs):
            if s.kind in ("stable", "broken_stable"):
                noise = rng.normal(0, 0.0015, n_days)
                ou = np.empty(n_days)
                ou[0] = 0.0
                for t in range(1, n_days):  # keep the peg: mean-reverting deviation
                    ou[t] = 0.7 * ou[t - 1] + noise[t]
                p = 1.0 + ou
                if s.kind == "broken_stable":
                    crash = max(int(last[i]) - 40, int(first[i]) + 1)
                    k = np.arange(n_days) - crash
                    p = np.where(k >= 0, np.exp(-0.18 * np.clip(k, 0, None)) + 0.01, p)
                price[i] = p
            elif s.kind in ("wrapped", "staked", "wrapped_staked"):
                parent = price[index[s.parent]] if s.parent in index else np.exp(np.cumsum(log_ret[i]))
                life = np.clip((days - first[i]) / max(n_days - first[i], 1), 0, 1)
                if s.kind == "wrapped":
                    ratio = 1.0 + rng.normal(0, 0.002, n_days)
                elif s.kind == "staked":
                    ratio = (
                        0.995 + rng.normal(0, 0.002, n_days) - 0.04 * np.exp(-(((life - 0.4) / 0.03) ** 2))
                    )
                else:
                    ratio = 1.07 + 0.11 * life + rng.normal(0, 0.002, n_days)
                price[i] = parent * ratio
        for i, s in enumerate(specs):
            if s.shock is not None:  # events the validation step must see: a stablecoin depeg, a pump
                shock_day = day_of(s.shock[0]) - start_day
                if first[i] < shock_day < last[i] - s.shock[2]:
                    price[i, shock_day : shock_day + s.shock[2]] *= s.shock[1]
        price = np.where(alive, price, np.nan)

        supply = np.empty((n, n_days))
        for i, s in enumerate(specs):
            frac = np.clip((days - first[i]) / max(int(last[i] - first[i]), 1), 0, 1)
            supply[i] = s.supply0 * (s.supply1 / s.supply0) ** frac
        market_cap = price * supply
        turnover = np.exp(rng.normal(np.log(0.04), 0.45, (n, n_days))) * (1 + 8 * np.abs(log_ret))
        volume = market_cap * turnover
        for i, s in enumerate(specs):
            f = int(first[i])
            if s.zero_cap_days:
                market_cap[i, f : f + s.zero_cap_days] = 0.0
            if s.null_cap_days:
                market_cap[i, f : f + s.null_cap_days] = np.nan
            if s.zero_volume_days:
                volume[i, f : f + s.zero_volume_days] = 0.0
        quirk = day_of("2017-04-02") - start_day  # the real feed's null market-cap day, reproduced
        if 0 <= quirk < n_days:
            for cid in ("bitcoin", "ethereum", "litecoin", "dogecoin"):
                if cid in index:
                    market_cap[index[cid], quirk] = np.nan
        market_cap = np.where(alive, market_cap, np.nan)
        volume = np.where(alive, volume, np.nan)

        present = alive.copy()
        for i in rng.choice(n, size=min(missing_day_coins, n), replace=False):
            lo, hi = int(first[i]) + 5, int(last[i]) - 5
            if hi - lo > 20:
                for k in rng.choice(np.arange(lo, hi), size=int(rng.integers(1, 6)), replace=False):
                    present[i, k] = False

        sigma = (
            np.where(np.isin([s.kind for s in specs], ["stable", "broken_stable"]), 0.002, vol * 0.6)[:, None]
            * np.ones((1, n_days))
        ).astype(np.float32)
        steps = rng.standard_normal((n, n_days - 1, 24)).astype(np.float32) / np.float32(np.sqrt(24.0))
        walk = np.concatenate([np.zeros((n, n_days - 1, 1), np.float32), np.cumsum(steps, axis=2)], axis=2)
        frac = (np.arange(25, dtype=np.float32) / np.float32(24.0))[None, None, :]
        bridge = walk - frac * walk[:, :, -1:]

        coins = [
            CoinInfo(
                id=s.id,
                symbol=s.symbol,
                name=s.name,
                categories=s.categories,
                platforms=_platforms(s, i),
                max_supply=s.max_supply,
                genesis_date=None,
                hashing_algorithm=s.hashing,
                block_time_in_minutes=s.block_minutes,
                image_id=i + 1,
            )
            for i, s in enumerate(specs)
        ]
        super().__init__(
            coins=coins,
            start_day=start_day,
            price=price,
            market_cap=market_cap,
            volume=volume,
            present=present,
            first=first,
            last=last,
            default_now=default_now_for(end_day),
            sigma=sigma,
            bridge=bridge,
            description=f"simulated market (seed={seed}, {n} coins, {dt.date.fromordinal(719163 + start_day)}"
            f" .. {dt.date.fromordinal(719163 + end_day)})",
        )
        self.total_supply = supply
        self.end_day = end_day

    @staticmethod
    def _specs(rng: np.random.Generator, n_coins: int, start_day: int, end_day: int) -> list[_Spec]:
        specs = list(ROSTER[:n_coins])
        used = {s.id for s in specs}
        span = end_day - start_day
        while len(specs) < n_coins:
            k = len(specs)
            name = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 4)))).capitalize()
            suffix = str(rng.choice(_SUFFIXES))
            cid = name.lower() + suffix
            if cid in used:
                continue
            used.add(cid)
            # A third list late (the last 40% of the range), the rest spread over the first 60%.
            late = rng.random() < 0.33
            offset = (
                int(rng.integers(int(span * 0.6), int(span * 0.9)))
                if late
                else int(rng.integers(0, int(span * 0.6)))
            )
            listed = dt.date.fromordinal(719163 + start_day + offset).isoformat()
            cats = tuple(sorted(set(rng.choice(_EXTRA_CATEGORIES, size=int(rng.integers(1, 3))).tolist())))
            specs.append(
                _Spec(
                    cid,
                    name.lower()[:4],
                    name + (" " + suffix.strip("-").title() if suffix else ""),
                    "coin",
                    listed,
                    price0=float(np.exp(rng.normal(-1.0, 1.5))),
                    supply0=float(np.exp(rng.normal(np.log(3e8), 1.0))),
                    supply1=0.0,
                    vol=float(rng.uniform(0.045, 0.1)),
                    beta=float(rng.uniform(0.7, 1.5)),
                    drift=float(rng.normal(0.0002, 0.0005)),
                    categories=cats,
                    null_cap_days=int(rng.integers(20, 90)) if k % 9 == 0 else 0,
                    zero_cap_days=int(rng.integers(30, 150)) if k % 11 == 0 else 0,
                )
            )
            specs[-1] = _with_supply(specs[-1], rng)
        return specs


def _with_supply(spec: _Spec, rng: np.random.Generator) -> _Spec:
    from dataclasses import replace

    return replace(spec, supply1=spec.supply0 * float(rng.uniform(1.0, 2.5)))


def specs_days(specs: list[_Spec], start_day: int, end_day: int) -> list[tuple[int, int]]:
    """(listing day, delisting day or -1) per spec, clamped into the range (short ranges keep every coin)."""
    out = []
    for s in specs:
        listed = day_of(s.listed) if s.listed else start_day
        listed = min(max(listed, start_day), end_day - 45)
        ended = -1
        if s.delisted:
            ended = max(day_of(s.delisted), listed + 40)
            if ended > end_day - 31:  # too recent to count as delisted in this range
                ended = -1
        out.append((listed, ended))
    return out


def _platforms(spec: _Spec, i: int) -> dict[str, str]:
    if spec.kind == "coin" and spec.categories and "layer-1" in spec.categories:
        return {"": ""}
    address = "0x" + f"{(i + 1) * 0x9E3779B97F4A7C15 & ((1 << 160) - 1):040x}"
    return {"ethereum": address}
