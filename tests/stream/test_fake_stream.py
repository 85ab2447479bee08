"""The fake stream's own contract, spoken to with a raw WebSocket client: the key checks, the socket limit, the
per-socket coin limit and unknown coins, with the codes docs/fake-server.md lists."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from kallos.fake.dataset import Dataset
from kallos.fake.stream import FakeStream
from kallos.stream.protocol import subscribe_command, tokens_command

from .conftest import KEY


async def _frames(ws, n: int) -> list[dict]:  # type: ignore[no-untyped-def]
    out = []
    while len(out) < n:
        out.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    return out


def test_handshake_statuses(market: Dataset) -> None:
    async def status_of(url: str, headers: dict[str, str]) -> int:
        try:
            async with connect(url, additional_headers=headers):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    with FakeStream(market, keys={KEY: "pro", "demo-key": "demo"}, max_sockets=2) as srv:
        assert asyncio.run(status_of(srv.url, {})) == 401
        assert asyncio.run(status_of(srv.url, {"x-cg-pro-api-key": "wrong"})) == 401
        assert asyncio.run(status_of(srv.url, {"x-cg-pro-api-key": "demo-key"})) == 403
        assert asyncio.run(status_of(srv.url + f"?x_cg_pro_api_key={KEY}", {})) == 101  # the query form works too

        async def third_socket() -> int:
            h = {"x-cg-pro-api-key": KEY}
            async with connect(srv.url, additional_headers=h), connect(srv.url, additional_headers=h):
                return await status_of(srv.url, h)

        assert asyncio.run(third_socket()) == 429


def test_subscription_codes_and_limits(market: Dataset) -> None:
    coins = [c.id for c in market.coins[:3]]

    async def go() -> list[dict]:
        async with connect(srv.url, additional_headers={"x-cg-pro-api-key": KEY}) as ws:
            first = await _frames(ws, 2)  # connection established + welcome
            await ws.send(subscribe_command())
            first += await _frames(ws, 1)
            await ws.send(tokens_command([*coins, "no-such-coin"]))
            return first + await _frames(ws, 4)

    with FakeStream(market, per_socket=2, rate=0.5) as srv:
        frames = asyncio.run(go())
    assert frames[0]["code"] == 3000 and frames[1] == {"type": "welcome"}
    assert frames[2]["type"] == "confirm_subscription"
    codes = [f.get("code") for f in frames[3:]]
    assert codes == [2000, 2000, 4029, 4004]
    assert frames[3]["message"] == f"Subscription is successful for {coins[0]}"


@pytest.mark.parametrize("replay", [0, 3])
def test_updates_are_numbered_and_replayed_on_resubscribe(market: Dataset, replay: int) -> None:
    coin = market.coins[0].id

    async def session() -> list[dict]:
        async with connect(srv.url, additional_headers={"x-cg-pro-api-key": KEY}) as ws:
            await ws.send(subscribe_command())
            await ws.send(tokens_command([coin]))
            out = []
            while len(out) < 5:
                f = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if f.get("c") == "C1":
                    out.append(f)
            return out

    with FakeStream(market, rate=20, replay=replay) as srv:
        a = asyncio.run(session())
        b = asyncio.run(session())
    ts_a, ts_b = [f["t"] for f in a], [f["t"] for f in b]
    assert ts_a == sorted(ts_a) and len(set(ts_a)) == 5
    if replay:
        assert ts_b[0] in ts_a  # the new subscription starts with updates the first one already had
    else:
        assert ts_b[0] > ts_a[-1]
