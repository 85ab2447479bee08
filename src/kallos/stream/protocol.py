"""The CGSimplePrice protocol: ActionCable-style JSON text frames (docs/decisions.md#D100).

Commands carry an `identifier` (and a `data`) that are JSON strings inside JSON. Updates arrive as flat objects
with one-letter keys in any order, any of them `null`. Parsing is one `json.loads` and a few dict lookups per
frame: the stream's throughput rests on this function.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

CHANNEL = "CGSimplePrice"
UPDATE_CHANNEL_CODE = "C1"
IDENTIFIER = json.dumps({"channel": CHANNEL}, separators=(",", ":"))
SUBSCRIBED_CODE = 2000
CONNECTED_CODE = 3000


class MalformedFrame(ValueError):
    """A frame that is not a valid control frame or price update; `reason` says why (it is logged and skipped)."""

    def __init__(self, reason: str, frame: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.frame = frame[:200]


@dataclass(frozen=True, slots=True)
class PriceUpdate:
    """One price update. `ts_us` is the update time in integer microseconds since the epoch: the key that
    de-duplicates replays (two floats that round to the same microsecond are the same update)."""

    coin_id: str
    ts_us: int
    price: float | None
    change_24h_pct: float | None
    market_cap: float | None
    volume_24h: float | None
    vs: str = "usd"


@dataclass(frozen=True, slots=True)
class Control:
    """A frame that is not an update: welcome, ping, subscription confirmations, per-coin codes and errors."""

    kind: str  # welcome | ping | confirm | subscribed | connected | error | reject | other
    code: int | None = None
    message: str | None = None
    coin_id: str | None = None

    @property
    def is_error(self) -> bool:
        return self.kind in ("error", "reject")


def subscribe_command() -> str:
    return json.dumps({"command": "subscribe", "identifier": IDENTIFIER}, separators=(",", ":"))


def unsubscribe_command() -> str:
    return json.dumps({"command": "unsubscribe", "identifier": IDENTIFIER}, separators=(",", ":"))


def tokens_command(coins: Sequence[str], *, action: str = "set_tokens", vs_currencies: Sequence[str] = ()) -> str:
    """`set_tokens` (choose coins) or `unset_tokens` (stop them) on the CGSimplePrice channel."""
    if action not in ("set_tokens", "unset_tokens"):
        raise ValueError(f"unknown action {action!r}")
    data: dict[str, object] = {"coin_id": list(coins), "action": action}
    if vs_currencies:
        data["vs_currencies"] = list(vs_currencies)
    return json.dumps(
        {"command": "message", "identifier": IDENTIFIER, "data": json.dumps(data, separators=(",", ":"))},
        separators=(",", ":"),
    )


def _number(obj: dict[str, object], key: str, frame: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedFrame(f"field {key!r} is not a number: {value!r}", frame)
    out = float(value)
    if not math.isfinite(out):
        raise MalformedFrame(f"field {key!r} is not finite", frame)
    return out


def parse_frame(frame: str | bytes) -> PriceUpdate | Control:
    """One text frame -> an update or a control frame; anything else raises :class:`MalformedFrame`."""
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    try:
        obj = json.loads(text)
    except ValueError:
        raise MalformedFrame("not JSON", text) from None
    if not isinstance(obj, dict):
        raise MalformedFrame("not a JSON object", text)
    channel = obj.get("c")
    if channel is None:
        return _control(obj, text)
    if channel != UPDATE_CHANNEL_CODE:
        return Control("other", message=f"channel {channel!r}")
    coin = obj.get("i")
    if not isinstance(coin, str) or not coin:
        raise MalformedFrame("update without a coin id", text)
    t = _number(obj, "t", text)
    if t is None:
        raise MalformedFrame(f"update for {coin} without an update time", text)
    if t <= 0:
        raise MalformedFrame(f"update for {coin} with a non-positive update time", text)
    vs = obj.get("vs")
    return PriceUpdate(
        coin_id=coin,
        ts_us=round(t * 1_000_000),
        price=_number(obj, "p", text),
        change_24h_pct=_number(obj, "pp", text),
        market_cap=_number(obj, "m", text),
        volume_24h=_number(obj, "v", text),
        vs=vs if isinstance(vs, str) and vs else "usd",
    )


def _control(obj: dict[str, object], text: str) -> Control:
    kind = obj.get("type")
    code = obj.get("code")
    message = obj.get("message")
    msg = message if isinstance(message, str) else None
    if kind == "ping":
        return Control("ping")
    if kind == "welcome":
        return Control("welcome")
    if kind == "confirm_subscription":
        return Control("confirm")
    if kind == "reject_subscription":
        return Control("reject", message="the server rejected the subscription")
    if isinstance(code, int) and not isinstance(code, bool):
        if code == SUBSCRIBED_CODE:
            coin = msg.rsplit(" ", 1)[-1] if msg and msg.startswith("Subscription is successful for ") else None
            return Control("subscribed", code, msg, coin)
        if code == CONNECTED_CODE:
            return Control("connected", code, msg)
        if code >= 4000:
            return Control("error", code, msg)
        return Control("other", code, msg)
    if kind is not None or code is not None:
        return Control("other", message=str(kind if kind is not None else code))
    raise MalformedFrame("neither an update nor a control frame", text)
