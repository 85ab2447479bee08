"""Coins over sockets within CoinGecko's limits: 100 coins per channel per socket, 10 sockets per key."""

from __future__ import annotations

from collections.abc import Sequence

from kallos.errors import UsageError

COINS_PER_SOCKET = 100
MAX_SOCKETS = 10


def plan_shards(
    coins: Sequence[str], *, per_socket: int = COINS_PER_SOCKET, max_sockets: int = MAX_SOCKETS
) -> list[list[str]]:
    """Split `coins` (duplicates dropped, order kept) into as few sockets as the limits allow; refuse what cannot
    fit rather than silently streaming a subset."""
    unique = list(dict.fromkeys(coins))
    if not unique:
        raise UsageError("no coins to stream: name them with --coins or choose --top N")
    capacity = per_socket * max_sockets
    if len(unique) > capacity:
        raise UsageError(
            f"{len(unique)} coins do not fit CoinGecko's WebSocket limits ({per_socket} coins per socket, "
            f"{max_sockets} sockets per key: at most {capacity}); stream fewer coins, or run a second key"
        )
    return [unique[i : i + per_socket] for i in range(0, len(unique), per_socket)]
