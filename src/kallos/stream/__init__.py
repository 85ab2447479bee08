"""Real-time prices from CoinGecko's WebSocket API (CGSimplePrice) into the store and onto a message bus.

The protocol (`protocol`), the sharding of coins over sockets (`shards`), the replay filter (`dedup`) and the
micro-batch (`batch`) are pure; sockets (`connection`), the store and the bus (`sink`, `fanout`) are the edges, and
`run.stream_prices` ties them together. docs/streaming.md explains the design; docs/decisions.md#D100 onwards
records the choices.
"""
