"""Capping properties (docs/index.md items 1-5), driven by hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kallos.index.capping import CapInfeasibleError, cap_weights, min_coins_for_cap

CAPS = st.lists(st.floats(min_value=1e-3, max_value=1e12, allow_nan=False), min_size=1, max_size=30)
MAX_WEIGHT = st.floats(min_value=0.04, max_value=1.0)
SETTINGS = settings(max_examples=150, deadline=None)


def feasible(m: list[float], cap: float) -> bool:
    return len(m) >= min_coins_for_cap(cap)


@SETTINGS
@given(CAPS, MAX_WEIGHT)
def test_weights_are_a_capped_distribution(m: list[float], cap: float) -> None:
    assume(feasible(m, cap))
    w = cap_weights(m, cap)
    assert np.all(w >= 0)
    assert abs(w.sum() - 1.0) <= 1e-12
    assert w.max() <= cap * (1 + 1e-12)


@SETTINGS
@given(CAPS, MAX_WEIGHT)
def test_uncapped_coins_keep_their_market_cap_ratios(m: list[float], cap: float) -> None:
    assume(feasible(m, cap))
    w = cap_weights(m, cap)
    mm = np.asarray(m)
    free = np.flatnonzero(w < cap * (1 - 1e-9))
    for i, j in zip(free[:-1], free[1:], strict=True):
        assert w[i] / w[j] == pytest.approx(mm[i] / mm[j], rel=1e-9)


@SETTINGS
@given(CAPS, MAX_WEIGHT)
def test_capping_capped_weights_changes_nothing(m: list[float], cap: float) -> None:
    assume(feasible(m, cap))
    w = cap_weights(m, cap)
    np.testing.assert_allclose(cap_weights(w, cap), w, rtol=0, atol=1e-12)


@SETTINGS
@given(CAPS, MAX_WEIGHT)
def test_order_is_preserved_and_uncapped_inputs_pass_through(m: list[float], cap: float) -> None:
    assume(feasible(m, cap))
    w = cap_weights(m, cap)
    mm = np.asarray(m)
    order = np.argsort(mm, kind="stable")
    assert np.all(np.diff(w[order]) >= -1e-15)
    plain = mm / mm.sum()
    if plain.max() <= cap:
        np.testing.assert_allclose(w, plain, rtol=1e-12)


@SETTINGS
@given(CAPS, MAX_WEIGHT)
def test_too_few_coins_for_the_cap_is_an_error(m: list[float], cap: float) -> None:
    assume(not feasible(m, cap))
    with pytest.raises(CapInfeasibleError):
        cap_weights(m, cap)


def test_cap_binding_in_two_rounds_by_hand() -> None:
    # 600/950 > 35%: capped; the 65% left split 200:150 puts the second at 37.1%: capped in round two
    w = cap_weights([600.0, 200.0, 150.0], 0.35)
    np.testing.assert_allclose(w, [0.35, 0.35, 0.30], rtol=0, atol=1e-15)


def test_min_coins_for_cap() -> None:
    assert min_coins_for_cap(0.35) == 3
    assert min_coins_for_cap(0.2) == 5
    assert min_coins_for_cap(0.25) == 4
    assert min_coins_for_cap(1.0) == 1
    assert min_coins_for_cap(0.3) == 4


def test_exactly_full_cap_gives_equal_weights() -> None:
    w = cap_weights([10.0, 1.0, 1.0, 1.0], 0.25)
    np.testing.assert_allclose(w, [0.25] * 4)
