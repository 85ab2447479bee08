"""Settings: names, defaults, one clear error per bad value, and a key that never shows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kallos.errors import ConfigError
from kallos.settings import load_settings


def test_defaults_select_an_embedded_duckdb_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KALLOS_DATABASE_URL")
    settings = load_settings()
    assert settings.database_url.startswith("duckdb:///") and settings.database_url.endswith("kallos.duckdb")
    assert settings.coingecko_plan == "public" and settings.effective_rate_limit == 5
    assert settings.effective_close_source == "markets"


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("KALLOS_COINGECKO_PLAN=pro\nCOINGECKO_API_KEY=CG-dotenv-secret\n")
    monkeypatch.setenv("KALLOS_RATE_LIMIT_PER_MINUTE", "250")
    monkeypatch.setenv("KALLOS_NOW", "2024-05-01T12:00:00")
    settings = load_settings()
    assert settings.coingecko_plan == "pro" and settings.api_key == "CG-dotenv-secret"
    assert settings.effective_rate_limit == 250 and settings.effective_close_source == "chart"
    assert settings.now == dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("KALLOS_COINGECKO_PLAN", "gold", "public, demo, pro"),
        ("KALLOS_LOG_FORMAT", "xml", "json, console"),
        ("KALLOS_DATABASE_URL", "mysql://x", "duckdb:///"),
        ("KALLOS_RATE_LIMIT_PER_MINUTE", "-3", None),
    ],
)
def test_bad_setting_names_itself_and_the_accepted_values(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, accepted: str | None
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == name and name in str(info.value)
    if accepted:
        assert accepted in str(info.value)
    assert info.value.exit_code == 78


def test_api_key_never_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINGECKO_API_KEY", "CG-very-secret-key")
    settings = load_settings()
    assert "CG-very-secret-key" not in repr(settings) and "CG-very-secret-key" not in str(settings.model_dump())
    monkeypatch.setenv("KALLOS_COINGECKO_PLAN", "CG-very-secret-key")  # a key pasted into the wrong variable
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "CG-very-secret-key" not in str(info.value)
