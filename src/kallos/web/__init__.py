"""The dashboard (`kallos serve`): server-rendered pages, a JSON API and Prometheus metrics, read-only."""
