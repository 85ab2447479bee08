"""`signal_generation.json`: the parameters of every rule, validated on load.

The shipped default lives in the package (`kallos/data/signal_generation.json`); a user file comes from the
`KALLOS_SIGNAL_CONFIG` setting or the `--config` flag. Validation is strict: an unknown key, a wrong type (a
string where a number belongs, a boolean where a weight belongs) or an out-of-range threshold raises
:class:`~kallos.errors.SignalConfigError` naming the dotted key and the offending value, so a typo never
silently falls back to a default.

The config hash identifies the *behaviour* of a config: it is taken over the fully resolved parameters
(defaults filled in, `description` left out), so a user file equal to the default has the default's hash, and
a changed threshold changes it. Stored signals carry it; a new hash makes the step replace the coin's rows."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kallos.errors import SignalConfigError

Family = Literal["rsi", "macd", "ema_cross", "bollinger", "stochastic", "volume"]
FAMILIES: tuple[str, ...] = ("rsi", "macd", "ema_cross", "bollinger", "stochastic", "volume")
DEFAULT_CONFIG_RESOURCE = "data/signal_generation.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Rule(_Strict):
    enabled: bool = True
    weight: float = Field(default=1.0, ge=0.0, le=100.0)
    """The family's weight in the composite score (0 = fires rows but does not vote)."""


class RSIRule(_Rule):
    oversold: float = Field(default=30.0, gt=0.0, lt=100.0)
    overbought: float = Field(default=70.0, gt=0.0, lt=100.0)
    full_strength_distance: float = Field(default=15.0, gt=0.0, le=100.0)
    """RSI points beyond the threshold at which strength reaches 1."""

    @model_validator(mode="after")
    def _ordered(self) -> RSIRule:
        if self.oversold >= self.overbought:
            raise ValueError(f"oversold ({self.oversold}) must be below overbought ({self.overbought})")
        return self


class CrossRule(_Rule):
    full_strength: float = Field(default=0.005, gt=0.0, le=1.0)
    """Day-over-day change of the line spread, as a fraction of the close, at which strength reaches 1."""


class BollingerRule(_Rule):
    breakouts: bool = True
    reentries: bool = True
    full_strength: float = Field(default=0.25, gt=0.0, le=10.0)
    """Distance of the close from the band it crossed, in band widths, at which strength reaches 1."""


class StochasticRule(_Rule):
    oversold: float = Field(default=20.0, gt=0.0, lt=100.0)
    overbought: float = Field(default=80.0, gt=0.0, lt=100.0)

    @model_validator(mode="after")
    def _ordered(self) -> StochasticRule:
        if self.oversold >= self.overbought:
            raise ValueError(f"oversold ({self.oversold}) must be below overbought ({self.overbought})")
        return self


class VolumeRule(_Rule):
    weight: float = Field(default=0.5, ge=0.0, le=100.0)
    min_volume_roc: float = Field(default=0.25, ge=-1.0, le=1000.0)
    """volume_roc_7 (a fraction: 0.25 = volume 25% above a week ago) the day must reach."""
    min_cmf: float = Field(default=0.05, ge=0.0, le=1.0)
    """|cmf_20| that money flow must reach, with the sign of the day's price move."""
    require_cmf: bool = True
    """Where cmf_20 is missing (close-only coins), fire nothing (true) or judge on volume alone (false)."""
    full_strength_volume_roc: float = Field(default=1.0, gt=0.0, le=1000.0)
    """volume_roc_7 at which strength reaches 1."""


class Rules(_Strict):
    rsi: RSIRule = RSIRule()
    macd: CrossRule = CrossRule()
    ema_cross: CrossRule = CrossRule(weight=1.5)
    bollinger: BollingerRule = BollingerRule()
    stochastic: StochasticRule = StochasticRule()
    volume: VolumeRule = VolumeRule()


class ADXFilter(_Strict):
    enabled: bool = True
    min_adx: float = Field(default=20.0, ge=0.0, le=100.0)
    gated_rules: tuple[Literal["macd", "ema_cross", "bollinger"], ...] = ("macd", "ema_cross")
    when_missing: Literal["allow", "block"] = "allow"
    """adx_14 needs candles: on close-only coins, let gated rules fire (allow) or silence them (block)."""


class Composite(_Strict):
    buy_threshold: float = Field(default=0.15, gt=0.0, le=1.0)
    sell_threshold: float = Field(default=-0.15, ge=-1.0, lt=0.0)


class TimeframeSection(_Strict):
    """One timeframe's own rules; what it leaves out is taken from the top-level (daily) section."""

    description: str = ""
    rules: dict[str, Any] = {}
    adx_filter: dict[str, Any] = {}
    composite: dict[str, Any] = {}


class SignalConfig(_Strict):
    description: str = ""
    rules: Rules = Rules()
    adx_filter: ADXFilter = ADXFilter()
    composite: Composite = Composite()
    timeframes: dict[Literal["1h", "1d", "1w"], TimeframeSection] = {}
    """Per-timeframe sections (docs/decisions.md#D86); the top-level keys are the daily rules, as before."""

    def for_timeframe(self, timeframe: str) -> SignalConfig:
        """The resolved rules of one timeframe: its section merged over the top-level one."""
        section = self.timeframes.get(timeframe)  # type: ignore[call-overload]
        base = self.model_dump(mode="json", exclude={"timeframes"})
        if section is None:
            return SignalConfig.model_validate_json(json.dumps(base))
        merged = _deep_merge(base, section.model_dump(mode="json", exclude_defaults=True))
        try:
            return SignalConfig.model_validate_json(json.dumps(merged))
        except ValidationError as exc:
            raise _format_error(exc, f"(timeframes.{timeframe})") from None

    def config_hash(self) -> str:
        """16 hex digits of SHA-256 over the resolved parameters (description and other timeframes excluded, so
        a daily config hashes as it did before timeframes existed)."""
        payload = self.model_dump(mode="json", exclude={"description", "timeframes"})
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _format_error(exc: ValidationError, source: str) -> SignalConfigError:
    parts = []
    first_key = first_value = None
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        value = err.get("input")
        if err["type"] == "missing":
            value = None
        if first_key is None:
            first_key, first_value = key, value
        shown = json.dumps(value) if _jsonable(value) else repr(value)
        if err["type"] == "extra_forbidden":
            parts.append(f"{key} = {shown}: unknown key")
        else:
            parts.append(f"{key} = {shown}: {err['msg']}")
    return SignalConfigError(
        f"invalid signal config {source}: " + "; ".join(parts), key=first_key, value=first_value, file=source
    )


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, dict) or len(json.dumps(value)) < 200


def parse_signal_config(data: Any, source: str = "<dict>") -> SignalConfig:
    """Validate an already-parsed JSON object."""
    if not isinstance(data, dict):
        raise SignalConfigError(
            f"invalid signal config {source}: the top level must be a JSON object", key="<root>", file=source
        )
    try:
        # JSON-mode validation: JSON's types are the contract (an array for a list, a number for a float).
        config = SignalConfig.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        raise _format_error(exc, source) from None
    for timeframe in config.timeframes:  # a bad key in a timeframe section fails at load, naming it
        try:
            config.for_timeframe(timeframe)
        except SignalConfigError as exc:
            raise SignalConfigError(
                exc.message.replace("invalid signal config", f"invalid signal config {source}"),
                **{**exc.context, "file": source},
            ) from None
    return config


def default_config_text() -> str:
    return (resources.files("kallos") / DEFAULT_CONFIG_RESOURCE).read_text(encoding="utf-8")


def load_signal_config(path: str | Path | None = None) -> SignalConfig:
    """The user's file when a path is given, else the default shipped in the package."""
    if path is None:
        text, source = default_config_text(), "(package default)"
    else:
        p = Path(path).expanduser()
        source = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise SignalConfigError(f"cannot read signal config: {exc.strerror}", file=source) from None
        except UnicodeDecodeError as exc:
            hint = " (it looks like UTF-16: save it as UTF-8)" if _looks_utf16(p) else ""
            raise SignalConfigError(
                f"signal config {source} is not UTF-8 text{hint}: byte {exc.start} cannot be decoded", file=source
            ) from None
    if len(text) > MAX_CONFIG_BYTES:
        raise SignalConfigError(
            f"signal config {source} is {len(text):,} characters; a signal config is a few hundred", file=source
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SignalConfigError(
            f"signal config {source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            file=source,
        ) from None
    except RecursionError:
        raise SignalConfigError(
            f"signal config {source} is nested too deeply to be a signal config (at most {MAX_DEPTH} levels)",
            file=source,
        ) from None
    if _depth(data) > MAX_DEPTH:
        raise SignalConfigError(
            f"signal config {source} is nested more than {MAX_DEPTH} levels deep; the format has 4", file=source
        )
    return parse_signal_config(data, source)


MAX_DEPTH = 16
MAX_CONFIG_BYTES = 1_000_000


def _looks_utf16(path: Path) -> bool:
    head = path.read_bytes()[:4]
    return head[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(head) >= 2 and 0 in head[:2])


def _depth(value: Any, limit: int = MAX_DEPTH + 1) -> int:
    """Nesting depth of parsed JSON, counted no further than `limit` (iterative: no recursion to overflow)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth < limit:
                stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest
