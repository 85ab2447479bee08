"""Kallos: a cryptocurrency market-intelligence pipeline (CoinGecko -> validation -> store -> analytics)."""

__version__ = "0.1.0"
