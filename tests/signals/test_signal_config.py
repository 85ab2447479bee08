"""signal_generation.json: shipped default, user files, strict validation naming key and value, the hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kallos.errors import SignalConfigError
from kallos.settings import load_settings
from kallos.signals import SignalConfig, load_signal_config, parse_signal_config
from kallos.signals.config import default_config_text
from kallos.signals.step import resolve_config


def test_the_shipped_default_is_complete_and_equals_the_model_defaults() -> None:
    shipped = json.loads(default_config_text())
    cfg = load_signal_config()
    assert cfg == parse_signal_config(shipped)
    assert cfg.config_hash() == SignalConfig().config_hash()
    # every parameter is spelled out in the shipped file, so users can copy it and edit
    full = SignalConfig().model_dump(mode="json")

    def keys(d: dict, prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= keys(v, prefix + k + ".")
        return out

    sections = {k for k in keys(shipped) if k.startswith("timeframes.")}
    assert keys(shipped) - sections == keys(full)
    assert {"timeframes.1h.rules", "timeframes.1w.rules"} <= sections  # each timeframe has its own section
    assert cfg.for_timeframe("1h").config_hash() == cfg.config_hash()  # empty sections inherit the daily rules


@pytest.mark.parametrize(
    "data, key, value",
    [
        ({"rules": {"rsi": {"oversold": 120}}}, "rules.rsi.oversold", 120),
        ({"rules": {"rsi": {"oversold": "30"}}}, "rules.rsi.oversold", "30"),
        ({"rules": {"rsi": {"oversoldd": 30}}}, "rules.rsi.oversoldd", 30),
        ({"rulez": {}}, "rulez", {}),
        ({"rules": {"macd": {"weight": True}}}, "rules.macd.weight", True),
        ({"rules": {"macd": {"weight": -1}}}, "rules.macd.weight", -1),
        ({"rules": {"volume": {"require_cmf": "yes"}}}, "rules.volume.require_cmf", "yes"),
        ({"adx_filter": {"min_adx": 101}}, "adx_filter.min_adx", 101),
        ({"adx_filter": {"gated_rules": ["rsi"]}}, "adx_filter.gated_rules.0", "rsi"),
        ({"adx_filter": {"gated_rules": "macd"}}, "adx_filter.gated_rules", "macd"),
        ({"composite": {"buy_threshold": 1.5}}, "composite.buy_threshold", 1.5),
        ({"composite": {"sell_threshold": 0.1}}, "composite.sell_threshold", 0.1),
        ({"rules": {"stochastic": {"overbought": 0}}}, "rules.stochastic.overbought", 0),
    ],
)
def test_invalid_values_name_the_key_and_the_value(data: dict, key: str, value: object) -> None:
    with pytest.raises(SignalConfigError) as exc:
        parse_signal_config(data)
    assert exc.value.context["key"] == key
    assert exc.value.context["value"] == value
    assert key in str(exc.value) and json.dumps(value) in str(exc.value)
    assert exc.value.exit_code == 78  # a configuration input (docs/decisions.md#D59)


def test_crossed_thresholds_are_rejected() -> None:
    with pytest.raises(SignalConfigError, match=r"rules\.rsi .*oversold \(75.0\) must be below overbought"):
        parse_signal_config({"rules": {"rsi": {"oversold": 75}}})


def test_a_partial_user_file_fills_the_defaults(tmp_path: Path) -> None:
    p = tmp_path / "signals.json"
    p.write_text(json.dumps({"rules": {"rsi": {"oversold": 25}}}))
    cfg = load_signal_config(p)
    assert cfg.rules.rsi.oversold == 25 and cfg.rules.rsi.overbought == 70
    assert cfg.config_hash() != SignalConfig().config_hash()


def test_the_hash_ignores_the_description_and_key_order() -> None:
    a = parse_signal_config(
        {"description": "mine", "composite": {"sell_threshold": -0.3, "buy_threshold": 0.3}}
    )
    b = parse_signal_config({"composite": {"buy_threshold": 0.3, "sell_threshold": -0.3}})
    assert a.config_hash() == b.config_hash()
    assert len(a.config_hash()) == 16


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SignalConfigError, match="cannot read") as exc:
        load_signal_config(tmp_path / "missing.json")
    assert exc.value.context["file"].endswith("missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"rules": {"rsi": {"oversold": 30,}}}')
    with pytest.raises(SignalConfigError, match="not valid JSON.*line 1"):
        load_signal_config(bad)
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(SignalConfigError, match="JSON object"):
        load_signal_config(arr)


def test_the_setting_and_the_flag_choose_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_setting = tmp_path / "setting.json"
    from_setting.write_text(json.dumps({"rules": {"rsi": {"oversold": 21}}}))
    from_flag = tmp_path / "flag.json"
    from_flag.write_text(json.dumps({"rules": {"rsi": {"oversold": 22}}}))
    monkeypatch.setenv("KALLOS_SIGNAL_CONFIG", str(from_setting))
    settings = load_settings()
    assert resolve_config(settings).rules.rsi.oversold == 21
    assert resolve_config(settings, from_flag).rules.rsi.oversold == 22
    monkeypatch.delenv("KALLOS_SIGNAL_CONFIG")
    assert resolve_config(load_settings()) == load_signal_config()  # the package default


def test_utf16_and_deeply_nested_configs_are_configuration_errors(tmp_path, capsys) -> None:
    """Issue 13 #4/#10: a UTF-16 file and a deeply nested one crashed; a bad config now exits 78 like a setting."""
    from kallos.cli.main import main

    utf16 = tmp_path / "utf16.json"
    utf16.write_text('{"rules": {}}', encoding="utf-16")
    with pytest.raises(SignalConfigError, match="not UTF-8 text.*UTF-16") as info:
        load_signal_config(utf16)
    assert info.value.exit_code == 78 and info.value.setting == "KALLOS_SIGNAL_CONFIG"
    nested = tmp_path / "nested.json"
    for depth in (40, 100_000):
        nested.write_text("[" * depth + "]" * depth)
        with pytest.raises(SignalConfigError, match="nested"):
            load_signal_config(nested)
    for path in (utf16, nested):
        assert main(["signals", "generate", "--config", str(path)]) == 78
        err = capsys.readouterr().err
        assert str(path) in err and "Traceback" not in err
