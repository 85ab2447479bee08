"""The recorded CoinGecko responses in ../shared/data (VCR cassettes), read for shape comparisons."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.shared_data import SHARED_DATA

CASSETTES = SHARED_DATA / "coingecko_api_cassettes_coingecko_ruby"


def load_cassette(name: str) -> list[dict[str, Any]]:
    """The interactions of one recorded cassette, bodies parsed when JSON (skip when the data is absent)."""
    yaml = pytest.importorskip("yaml")
    path = CASSETTES / f"test_that_it_gets_{name}.yml"
    if not path.exists():
        pytest.skip(f"recorded cassettes not available at {CASSETTES}")

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor(
        "!binary",
        lambda loader, node: base64.b64decode(loader.construct_scalar(node)).decode("utf-8", "replace"),
    )
    data = yaml.load(path.read_text(), Loader=Loader)
    out = []
    for item in data["http_interactions"]:
        body = item["response"]["body"]["string"]
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        out.append(
            {"uri": item["request"]["uri"], "status": item["response"]["status"]["code"], "json": parsed}
        )
    return out
