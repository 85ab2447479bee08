"""Entry point: builds the command tree and maps Kallos errors to exit codes (docs/operations.md)."""

from __future__ import annotations

import importlib
import logging
import sys

import typer

import kallos
from kallos.errors import KallosError
from kallos.log import redact

app = typer.Typer(
    name="kallos",
    help="Kallos: CoinGecko market data -> validated store -> indicators, signals and a crypto index.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module registers its own commands; one module per command group keeps them independent.
COMMAND_MODULES = (
    "db",
    "fake_api",
    "coins",
    "market",
    "indicators",
    "signals",
    "index",
    "pipeline",
    "serve",
    "stream",
    "features",
)


def _register() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"kallos.cli.{name}")
        module.register(app)


_register()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kallos {kallos.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Kallos: CoinGecko market data -> validated store -> indicators, signals and a crypto index."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return (and, from the console script, exit with) the documented exit code."""
    try:
        app(args=argv, prog_name="kallos")  # typer handles usage errors itself (exit 2) and raises SystemExit
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KallosError as exc:
        logging.getLogger("kallos.cli").debug("command failed", exc_info=True)
        typer.echo(f"error: {redact(str(exc))}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # noqa: BLE001 - a bug: its traceback goes to the log, exit 1 (docs/decisions.md#D39)
        logging.getLogger("kallos.cli").critical("unexpected error (a bug in kallos)", exc_info=True)
        typer.echo(
            f"internal error: {redact(f'{type(exc).__name__}: {exc}')} "
            "(a bug in kallos; the traceback is in the log, please report it)",
            err=True,
        )
        code = 1
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
