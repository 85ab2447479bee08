"""Ingestion: CoinGecko -> validation -> store (docs/ingestion.md).

    sync_universe(store, client, settings)                       # kallos coins sync
    refresh_details(store, client, settings, coins=, top=)         # kallos coins details
    backfill(store, client, settings, coins=, top=, since=, ...)   # kallos market backfill
    daily_update(store, client, settings)                          # kallos market update
    validate_market_rows(frame, coin_id=, source=) -> (good, events)   # pure

Each step is async, returns a dict of counts (`coins`, `rows_written`, `rows_quarantined`, `events`,
`api_calls`, `failed`, `status`) and records one coin's failure without stopping the others. Import the
modules directly (`kallos.ingest.backfill`...): this package imports nothing heavy on its own.
"""
