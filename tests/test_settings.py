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
    assert settings.effective_rate_limit == 250 and settings.effective_close_source == "mixed"
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


def test_key_whitespace_is_stripped_at_load() -> None:
    """Issue 13 #2: `COINGECKO_API_KEY=$'KEY\\n'` reached the HTTP library, which quoted it in its error."""
    assert load_settings(coingecko_api_key="  CG-abcdefgh123\n").api_key == "CG-abcdefgh123"
    assert load_settings(coingecko_api_key=" \n").api_key is None


@pytest.mark.parametrize("key", ["CG-abc\x01defgh", "CG-abc\ndefgh", "CG-clé-secret99", "CG-abc\u00a0defgh"])
def test_key_with_control_or_non_ascii_characters_is_refused_by_name(
    key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kallos.cli.main import main

    with pytest.raises(ConfigError) as info:
        load_settings(coingecko_api_key=key)
    assert info.value.setting == "COINGECKO_API_KEY" and info.value.exit_code == 78
    monkeypatch.setenv("COINGECKO_API_KEY", key)
    assert main(["db", "status"]) == 78
    err = capsys.readouterr().err
    assert "COINGECKO_API_KEY" in err and "defgh" not in err and "secret" not in err


@pytest.mark.parametrize("url", ["ftp://api.example.com/api/v3", "file:///etc/passwd", "localhost:8080", "http://"])
def test_base_url_must_be_http_or_https(url: str) -> None:
    """Issue 13 #5: an ftp:// base URL was accepted and then retried 7 times."""
    with pytest.raises(ConfigError, match="KALLOS_COINGECKO_BASE_URL.*http:// or https://") as info:
        load_settings(coingecko_base_url=url)
    assert info.value.exit_code == 78
    assert load_settings(coingecko_base_url="http://127.0.0.1:8080/api/v3").coingecko_base_url


@pytest.mark.parametrize("address", ["not an address", "tcp://", "http://sched:8786", "sched"])
def test_dask_scheduler_must_be_an_address(address: str) -> None:
    """Issue 13 #4: a scheduler that is not an address failed with a traceback after hanging 60 s."""
    with pytest.raises(ConfigError, match="KALLOS_DASK_SCHEDULER.*tcp://127.0.0.1:8786"):
        load_settings(dask_scheduler=address)
    assert load_settings(dask_scheduler="tcp://10.0.0.5:8786").dask_scheduler == "tcp://10.0.0.5:8786"
    assert load_settings(dask_scheduler="10.0.0.5:8786").dask_scheduler == "10.0.0.5:8786"


def test_a_slow_positive_rate_is_accepted_and_zero_is_not() -> None:
    assert load_settings(rate_limit_per_minute=0.01).effective_rate_limit == 0.01
    with pytest.raises(ConfigError, match="KALLOS_RATE_LIMIT_PER_MINUTE"):
        load_settings(rate_limit_per_minute=0)
