"""Session fixtures: the real bar panels (loaded once)."""

from __future__ import annotations

import pandas as pd
import pytest

from .indicator_data import load_coingecko_panel, load_exchange_panel


@pytest.fixture(scope="session")
def exchange_panel() -> pd.DataFrame:
    return load_exchange_panel()


@pytest.fixture(scope="session")
def coingecko_panel() -> pd.DataFrame:
    return load_coingecko_panel()
