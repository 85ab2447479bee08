"""CoinGecko API v3: the async client, its typed models, plan rules, error mapping and shared rate limiter."""

from kallos.coingecko.client import ClientStats, CoinGeckoClient
from kallos.coingecko.plans import PLANS, Plan, get_plan

__all__ = ["ClientStats", "CoinGeckoClient", "PLANS", "Plan", "get_plan"]
