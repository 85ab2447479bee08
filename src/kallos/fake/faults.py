"""Fault injection for the fake server: chosen per run, by rates (seeded) or by a script.

A script is a list of fault names consumed one per request (``None`` = serve normally); once it is used up
the rates apply. Names::

    "429"                 rate-limit answer with the real body and a Retry-After header (``retry_after`` s)
    "429_no_retry_after"  the same without Retry-After
    "429_long"            Retry-After above 60 s (``retry_after_long``), as a Cloudflare-fronted 429 can carry
    "500" "502" "503"     server errors (500 with CoinGecko's JSON body, 502/503 as proxy HTML)
    "cloudflare_403"      Cloudflare's HTML "Access denied" page, error 1020, HTTP 403
    "blocked_403"         CoinGecko's JSON block (error_code 20000, "malicious activity ... ASN"), HTTP 403
    "truncated_json"      the real answer cut in half (valid headers, invalid JSON)
    "malformed_point"     the real answer (valid JSON) with the middle point of its first array of points (a
                          chart's ``prices``, the candles) replaced by ``malformed_point`` (default null)
    "malformed_series"    the real answer with its first array of points replaced by ``malformed_series``
                          (default ``{}``: not a list)
    "slow"                the real answer after sleeping ``slow_seconds`` (set it above the client's timeout)
    "disconnect"          the connection is closed without an answer
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

FAULT_NAMES = (
    "429",
    "429_no_retry_after",
    "429_long",
    "500",
    "502",
    "503",
    "cloudflare_403",
    "blocked_403",
    "truncated_json",
    "malformed_point",
    "malformed_series",
    "slow",
    "disconnect",
)


@dataclass
class Faults:
    """Which faults to inject. Rates are probabilities per request, drawn from ``seed``.

    ``burst_length`` turns each random 429 into a burst of that many consecutive 429s. ``paths`` limits
    injection (script and rates) to requests whose path (below /api/v3) starts with one of the prefixes.
    """

    rate_429: float = 0.0
    rate_429_no_retry_after: float = 0.0
    rate_5xx: float = 0.0
    rate_cloudflare: float = 0.0
    rate_truncated: float = 0.0
    rate_slow: float = 0.0
    rate_disconnect: float = 0.0
    burst_length: int = 1
    retry_after: int = 1
    retry_after_long: int = 120
    slow_seconds: float = 2.0
    seed: int = 0
    script: list[str | None] | None = None
    paths: tuple[str, ...] | None = None
    malformed_point: Any = None
    malformed_series: Any = field(default_factory=dict)
    _rng: random.Random = field(init=False, repr=False)
    _queue: list[str | None] = field(init=False, repr=False)
    _burst: list[str] = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in self.script or []:
            if name is not None and name not in FAULT_NAMES:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
        if self.paths is not None and isinstance(self.paths, str):
            self.paths = (self.paths,)
        self._rng = random.Random(self.seed)
        self._queue = list(self.script or [])
        self._burst = []
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, spec: str, **kwargs: object) -> Faults:
        """CLI form: rates ``"429=0.1,5xx=0.05,slow=0.01"`` or a script ``"script:429,503,-"`` (- = none)."""
        spec = spec.strip()
        if spec.startswith("script:"):
            names = [None if n.strip() in ("-", "", "none") else n.strip() for n in spec[7:].split(",")]
            return cls(script=names, **kwargs)  # type: ignore[arg-type]
        keys = {
            "429": "rate_429",
            "429_no_retry_after": "rate_429_no_retry_after",
            "5xx": "rate_5xx",
            "cloudflare": "rate_cloudflare",
            "truncated": "rate_truncated",
            "slow": "rate_slow",
            "disconnect": "rate_disconnect",
        }
        rates: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, value = part.partition("=")
            if name not in keys:
                raise ValueError(f"unknown fault rate {name!r}; known: {', '.join(keys)}")
            rates[keys[name]] = float(value)
        return cls(**rates, **kwargs)  # type: ignore[arg-type]

    def applies_to(self, path: str) -> bool:
        return self.paths is None or any(path.startswith(p) for p in self.paths)

    def next_fault(self) -> str | None:
        """The fault for the next request (thread-safe; consumes the script first)."""
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
            if self._burst:
                return self._burst.pop()
            r = self._rng.random()
            for name, rate in self._rates():
                if r < rate:
                    if name == "429" and self.burst_length > 1:
                        self._burst = ["429"] * (self.burst_length - 1)
                    if name == "5xx":
                        return self._rng.choice(("500", "502", "503"))
                    return name
                r -= rate
            return None

    def _rates(self) -> Iterable[tuple[str, float]]:
        yield "429", self.rate_429
        yield "429_no_retry_after", self.rate_429_no_retry_after
        yield "5xx", self.rate_5xx
        yield "cloudflare_403", self.rate_cloudflare
        yield "truncated_json", self.rate_truncated
        yield "slow", self.rate_slow
        yield "disconnect", self.rate_disconnect

    @property
    def remaining_script(self) -> int:
        with self._lock:
            return len(self._queue)

    def extend_script(self, names: Iterable[str | None]) -> None:
        """Queue more scripted faults on a running server."""
        names = list(names)
        for name in names:
            if name is not None and name not in FAULT_NAMES:
                raise ValueError(f"unknown fault {name!r}")
        with self._lock:
            self._queue.extend(names)


SHAPE_FAULTS = ("malformed_point", "malformed_series")
"""Faults that change a real 200 answer's JSON: the client must refuse it (a shape error, not retried)."""


def malformed(body: Any, fault: str, faults: Faults | None) -> Any:
    """`body` (an answer, decoded or already JSON text) with its first array of points broken as `fault` says;
    answers without one unchanged."""
    if isinstance(body, str):
        body = json.loads(body)
    if isinstance(body, dict):
        key = next((k for k, v in body.items() if isinstance(v, list) and v), None)
        if key is None:
            return body
        return {**body, key: malformed(body[key], fault, faults)}
    if not isinstance(body, list) or not body:
        return body
    if fault == "malformed_series":
        return faults.malformed_series if faults is not None else {}
    points = list(body)
    points[len(points) // 2] = faults.malformed_point if faults is not None else None
    return points
