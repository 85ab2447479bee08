"""Recorded real CoinGecko responses (VCR cassettes of coingecko_ruby, 2021) read from ../shared/data."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

CASSETTES = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "coingecko_api_cassettes_coingecko_ruby"
).resolve()


@dataclass(frozen=True)
class Interaction:
    uri: str
    status: int
    headers: dict[str, str]
    body: bytes


class _Loader(yaml.SafeLoader):
    pass


def _binary(loader: yaml.SafeLoader, node: yaml.Node) -> bytes:
    return base64.b64decode(loader.construct_scalar(node))  # type: ignore[arg-type]


_Loader.add_constructor("!binary", _binary)


@cache
def _load(path: Path) -> tuple[Interaction, ...]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    out = []
    for it in data["http_interactions"]:
        resp = it["response"]
        body = resp["body"]["string"]
        headers = {k: (v[0] if isinstance(v, list) else v) for k, v in (resp.get("headers") or {}).items()}
        out.append(
            Interaction(
                uri=it["request"]["uri"],
                status=int(resp["status"]["code"]),
                headers=headers,
                body=body if isinstance(body, bytes) else body.encode("utf-8"),
            )
        )
    return tuple(out)


class Cassettes:
    def all(self, name: str) -> tuple[Interaction, ...]:
        """All interactions of `test_that_it_gets_<name>.yml`."""
        return _load(CASSETTES / f"test_that_it_gets_{name}.yml")

    def first(self, name: str, status: int = 200) -> Interaction:
        return next(i for i in self.all(name) if i.status == status)


@pytest.fixture
def cassettes() -> Cassettes:
    """Recorded responses; skips with the reason when ../shared/data is absent."""
    if not CASSETTES.is_dir():
        pytest.skip(
            f"real data not available at {CASSETTES} (it lives in ../shared/data beside the repository)"
        )
    return Cassettes()
