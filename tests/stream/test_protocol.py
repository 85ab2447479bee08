"""The CGSimplePrice protocol: commands as CoinGecko documents them, updates in any key order with nulls, and every
kind of bad frame refused with its reason."""

from __future__ import annotations

import json

import pytest

from kallos.stream.protocol import (
    Control,
    MalformedFrame,
    PriceUpdate,
    parse_frame,
    subscribe_command,
    tokens_command,
    unsubscribe_command,
)


def test_commands_carry_json_strings_inside_json() -> None:
    sub = json.loads(subscribe_command())
    assert sub == {"command": "subscribe", "identifier": '{"channel":"CGSimplePrice"}'}
    msg = json.loads(tokens_command(["ethereum", "bitcoin"]))
    assert msg["command"] == "message"
    assert json.loads(msg["identifier"]) == {"channel": "CGSimplePrice"}
    assert json.loads(msg["data"]) == {"coin_id": ["ethereum", "bitcoin"], "action": "set_tokens"}
    unset = json.loads(tokens_command(["bitcoin"], action="unset_tokens", vs_currencies=["usd", "eur"]))
    assert json.loads(unset["data"]) == {
        "coin_id": ["bitcoin"],
        "action": "unset_tokens",
        "vs_currencies": ["usd", "eur"],
    }
    assert json.loads(unsubscribe_command())["command"] == "unsubscribe"
    with pytest.raises(ValueError):
        tokens_command(["bitcoin"], action="subscribe_all")


def test_update_in_the_documented_shape() -> None:
    frame = (
        '{"c":"C1","i":"ethereum","vs":"usd","p":2591.08,"pp":1.376,"m":312938652962.8,"v":20460612214.8,'
        '"t":1747808150.269}'
    )
    u = parse_frame(frame)
    assert u == PriceUpdate("ethereum", 1747808150269000, 2591.08, 1.376, 312938652962.8, 20460612214.8, "usd")


def test_keys_in_any_order_and_null_fields() -> None:
    u = parse_frame('{"t":1747808150,"m":null,"v":null,"pp":null,"p":null,"i":"bitcoin","c":"C1"}')
    assert isinstance(u, PriceUpdate)
    assert (u.coin_id, u.ts_us, u.price, u.market_cap, u.volume_24h, u.change_24h_pct) == (
        "bitcoin",
        1747808150000000,
        None,
        None,
        None,
        None,
    )
    assert u.vs == "usd"  # older pages have no `vs`: the default quote currency


def test_integer_prices_and_bytes_frames() -> None:
    u = parse_frame(b'{"c":"C1","i":"bitcoin","p":70187,"t":1747808150.5}')
    assert isinstance(u, PriceUpdate) and u.price == 70187.0 and u.ts_us == 1747808150500000


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ('{"c":"C1","i":', "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"c":"C1","p":1.0,"t":1}', "without a coin id"),
        ('{"c":"C1","i":"bitcoin","p":1.0}', "without an update time"),
        ('{"c":"C1","i":"bitcoin","p":1.0,"t":-5}', "non-positive update time"),
        ('{"c":"C1","i":"bitcoin","p":"cheap","t":1}', "'p' is not a number"),
        ('{"c":"C1","i":"bitcoin","p":true,"t":1}', "'p' is not a number"),
        ('{"c":"C1","i":"bitcoin","m":NaN,"t":1}', "'m' is not finite"),
        ('{"hello":"world"}', "neither an update nor a control frame"),
    ],
)
def test_malformed_frames_name_their_reason(frame: str, reason: str) -> None:
    with pytest.raises(MalformedFrame) as err:
        parse_frame(frame)
    assert reason in err.value.reason


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type":"welcome","sid":"abc"}', Control("welcome")),
        ('{"type":"ping","message":1747808150}', Control("ping")),
        ('{"type":"confirm_subscription","identifier":"{\\"channel\\":\\"CGSimplePrice\\"}"}', Control("confirm")),
        (
            '{"code":2000,"message":"Subscription is successful for ethereum"}',
            Control("subscribed", 2000, "Subscription is successful for ethereum", "ethereum"),
        ),
        (
            '{"code":3000,"message":"Connection established","uuid":"u"}',
            Control("connected", 3000, "Connection established"),
        ),
        ('{"code":4004,"message":"Invalid coin id: nope"}', Control("error", 4004, "Invalid coin id: nope")),
    ],
)
def test_control_frames(frame: str, expected: Control) -> None:
    assert parse_frame(frame) == expected


def test_reject_subscription_is_an_error() -> None:
    item = parse_frame('{"type":"reject_subscription","identifier":"x"}')
    assert isinstance(item, Control) and item.is_error


def test_other_channels_are_not_price_updates() -> None:
    item = parse_frame('{"c":"G1","n":"eth","pa":"0x1","p":1.0,"t":1}')
    assert isinstance(item, Control) and item.kind == "other"
