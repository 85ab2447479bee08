import datetime as dt

from kallos.pipeline.schedule import index_due, month_end_on_or_before, universe_due

UTC = dt.UTC


def test_universe_syncs_when_nothing_is_stored():
    assert universe_due(dt.date(2025, 1, 8), None, has_coins=False)[0]
    assert universe_due(dt.date(2025, 1, 8), dt.datetime(2025, 1, 7, tzinfo=UTC), has_coins=False)[0]


def test_universe_syncs_on_monday_once():
    monday = dt.date(2025, 1, 6)
    assert monday.weekday() == 0
    assert universe_due(monday, dt.datetime(2025, 1, 4, 6, tzinfo=UTC))[0]
    # already synced this Monday: not again
    assert not universe_due(monday, dt.datetime(2025, 1, 6, 1, tzinfo=UTC))[0]


def test_universe_syncs_when_older_than_seven_days():
    wednesday = dt.date(2025, 1, 8)
    assert not universe_due(wednesday, dt.datetime(2025, 1, 2, 6, tzinfo=UTC))[0]  # 6 days
    assert universe_due(wednesday, dt.datetime(2025, 1, 1, 0, tzinfo=UTC))[0]  # 7 days
    assert universe_due(wednesday, None)[0]


def test_month_end_on_or_before():
    assert month_end_on_or_before(dt.date(2024, 2, 29)) == dt.date(2024, 2, 29)
    assert month_end_on_or_before(dt.date(2024, 3, 1)) == dt.date(2024, 2, 29)
    assert month_end_on_or_before(dt.date(2025, 1, 15)) == dt.date(2024, 12, 31)


def test_index_due_for_every_new_final_day_and_every_mark():
    assert not index_due(None, None)[0]
    assert index_due(dt.date(2025, 1, 15), None)[0]
    assert index_due(dt.date(2025, 1, 15), dt.date(2025, 1, 14))[0]  # a new day inside the month
    assert not index_due(dt.date(2025, 1, 15), dt.date(2025, 1, 15))[0]
    due, why = index_due(dt.date(2025, 1, 15), dt.date(2025, 1, 15), dt.date(2024, 11, 30))
    assert due and "2024-11-01" in why  # a changed input: that month and every later one
    assert index_due(dt.date(2025, 3, 2), dt.date(2024, 12, 31))[0]
