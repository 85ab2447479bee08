"""`kallos serve`: the dashboard, its JSON API and /metrics (docs/operations.md#dashboard)."""

from __future__ import annotations

import ipaddress

import typer

from kallos.cli.common import DB_OPTION, NOW_OPTION, err_console, setup
from kallos.errors import ConfigError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind; beyond loopback needs KALLOS_DASHBOARD_TOKEN."
    ),
    port: int = typer.Option(8050, "--port", min=0, max=65535, help="Port to listen on."),
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """The dashboard: runs, freshness, data quality, market, index and signals pages, /api/ and /metrics.

    Read-only on the store; works while `kallos run` writes (docs/decisions.md#D92)."""
    import uvicorn

    from kallos.web.app import create_app

    settings = setup(now=now, database_url=database_url)
    if settings.dashboard_token is None and not is_loopback(host):
        raise ConfigError(
            f"binding the dashboard to {host} (beyond loopback) requires KALLOS_DASHBOARD_TOKEN: set a token of "
            "16+ characters; clients send it as `Authorization: Bearer <token>`",
            setting="KALLOS_DASHBOARD_TOKEN",
        )
    if settings.dashboard_token is not None:
        from kallos.log import register_secret

        register_secret(settings.dashboard_token.get_secret_value())
    app = create_app(settings)
    err_console.print(f"Kallos dashboard on http://{host}:{port}/ (metrics at /metrics; Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
