"""A named index's methodology: the options of :func:`build_index` that define it (docs/decisions.md#D62).

Several indices live side by side in the store, keyed by name. `default` is the spec's index, configured by the
`KALLOS_INDEX_*` settings; every other name is defined on the command line (`kallos index build --name NAME
--constituents 10 ...`) and its methodology is stored as JSON in `index_definitions`, so it is rebuilt the same
way every day whatever the environment says. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from kallos.errors import InputError

DEFAULT_NAME = "default"
REBALANCE_CODES = {"monthly": "M", "quarterly": "Q"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def check_name(name: str) -> str:
    """Index names are short identifiers: lower-case letters, digits, `_`, `.`, `-` (they key the tables)."""
    if not _NAME.match(name):
        raise InputError(
            "index name must be 1-63 characters of a-z, 0-9, '_', '.', '-' starting with a letter or digit",
            name=name,
        )
    return name


def parse_rebalance(value: str) -> str:
    """`monthly`/`quarterly` (or `M`/`Q`) -> the stored spelling."""
    v = str(value).strip().lower()
    v = {"m": "monthly", "q": "quarterly"}.get(v, v)
    if v not in REBALANCE_CODES:
        raise InputError("rebalance must be monthly or quarterly", rebalance=value)
    return v


def parse_categories(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated category rules: `default` (the shipped exclusions) and/or CoinGecko category ids;
    empty or `none` excludes nothing."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out = tuple(dict.fromkeys(s.strip() for s in items if s.strip() and s.strip().lower() != "none"))
    return out


@dataclass(frozen=True)
class IndexDefinition:
    name: str = DEFAULT_NAME
    n_constituents: int = 20
    max_weight: float = 0.35
    rebalance: str = "monthly"
    rank_buffer: int = 0
    min_history_days: int = 1095
    min_coverage: float = 0.9
    cost_bps: float | None = None
    excluded_categories: tuple[str, ...] = ("default",)
    risk_free: float = 0.0

    def __post_init__(self) -> None:
        check_name(self.name)
        object.__setattr__(self, "rebalance", parse_rebalance(self.rebalance))
        object.__setattr__(self, "excluded_categories", parse_categories(self.excluded_categories))
        if self.risk_free <= -1:
            raise InputError("risk_free must be above -100%", risk_free=self.risk_free)
        from kallos.index.build import check_params

        check_params(
            self.n_constituents,
            self.max_weight,
            self.min_history_days,
            self.min_coverage,
            REBALANCE_CODES[self.rebalance],
            self.rank_buffer,
            self.cost_bps,
            None,
        )

    def build_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`build_index` (without exclude/start/end)."""
        return {
            "n_constituents": self.n_constituents,
            "max_weight": self.max_weight,
            "rebalance": REBALANCE_CODES[self.rebalance],
            "rank_buffer": self.rank_buffer,
            "min_history_days": self.min_history_days,
            "min_coverage": self.min_coverage,
            "cost_bps": self.cost_bps,
            "risk_free": self.risk_free,
        }

    def params(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("name")
        out["excluded_categories"] = list(self.excluded_categories)
        return out

    def to_json(self) -> str:
        return json.dumps(self.params(), sort_keys=True)

    @classmethod
    def from_params(cls, name: str, params: Mapping[str, Any] | str | None) -> IndexDefinition:
        data = json.loads(params) if isinstance(params, str) else dict(params or {})
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError("stored index definition has unknown options", name=name, options=unknown)
        if "excluded_categories" in data:
            data["excluded_categories"] = tuple(data["excluded_categories"])
        return cls(name=name, **data)

    def with_options(self, **options: Any) -> IndexDefinition:
        """A copy with the options that are not None replaced."""
        given = {k: v for k, v in options.items() if v is not None}
        return replace(self, **given) if given else self

    def describe(self) -> str:
        cost = f", costs {self.cost_bps:g} bps" if self.cost_bps is not None else ""
        buffer = f", rank buffer {self.rank_buffer}" if self.rank_buffer else ""
        return (
            f"top {self.n_constituents}, {self.max_weight:.0%} cap, {self.rebalance}{buffer}, "
            f"{self.min_history_days} days history at {self.min_coverage:.0%} coverage{cost}, "
            f"excluding {','.join(self.excluded_categories) or 'nothing'}, risk-free {self.risk_free:.2%}"
        )


def default_definition(settings: Any) -> IndexDefinition:
    """The `default` index from the `KALLOS_INDEX_*` settings."""
    return IndexDefinition(
        name=DEFAULT_NAME,
        n_constituents=settings.index_constituents,
        max_weight=settings.index_max_weight,
        rebalance=settings.index_rebalance,
        rank_buffer=settings.index_rank_buffer,
        min_history_days=settings.index_min_history_days,
        min_coverage=settings.index_min_coverage,
        cost_bps=settings.index_cost_bps,
        excluded_categories=parse_categories(settings.index_excluded_categories),
        risk_free=settings.index_risk_free,
    )
