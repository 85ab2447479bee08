"""Fixtures of the ingestion tests: the real CoinGecko CSV exports served by the fake server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kallos.fake import FakeCoinGecko, load_csv_dataset
from kallos.fake.dataset import Dataset

from .helpers import CSV_FOLDERS, IDS_CSV, shared_path


@pytest.fixture(scope="session")
def csv_dataset() -> Dataset:
    root = shared_path()
    return load_csv_dataset([root / f for f in CSV_FOLDERS], root / IDS_CSV)


@pytest.fixture
def csv_server(csv_dataset: Dataset) -> Iterator[FakeCoinGecko]:
    with FakeCoinGecko(dataset=csv_dataset, plan="pro") as srv:
        yield srv
