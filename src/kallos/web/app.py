"""`kallos serve`: the dashboard, its JSON API and /metrics, one Starlette application (docs/decisions.md#D91).

Every page has a JSON twin under /api/ returning the same data (`{"state", "as_of", "data"}`); pages are
server-rendered Jinja2 with inline SVG charts, the CSS and the one small script come from the package. The
application only reads (kallos.web.access); parameters are checked first (kallos.web.params) so a bad value is
a 422 and an unknown coin or run a 404, never a traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

import kallos
from kallos import clock
from kallos.log import get_logger
from kallos.settings import Settings
from kallos.store import Store
from kallos.web import data, params, views
from kallos.web.access import Answer, StoreReader

log = get_logger(__name__)
HERE = Path(__file__).parent
NAV = (
    ("overview", "/", "Overview"),
    ("runs", "/runs", "Runs"),
    ("quality", "/quality", "Data quality"),
    ("market", "/market", "Market"),
    ("index", "/index", "Index"),
    ("signals", "/signals", "Signals"),
)
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class Page:
    name: str
    template: str
    load: Callable[[Request, Settings], tuple[str, Callable[[Store], Any]]]
    """Parses the request (raising params.BadParameter) and returns the cache key and the store reader."""


def _today() -> dt.date:
    return clock.today()


def _overview(request: Request, settings: Settings) -> tuple[str, Callable[[Store], Any]]:
    return "overview", lambda s: data.overview(s, today=_today(), min_coverage=settings.min_coverage)


def _runs(request: Request, settings: Settings) -> tuple[str, Callable[[Store], Any]]:
    return "runs", data.runs_page


def _run(request: Request, settings: Settings) -> tuple[str, Callable[[Store], Any]]:
    rid = params.run_id(request.path_params["run_id"])
    return f"run:{rid}", lambda s: data.run_detail(s, rid)


def _quality(request: Request, settings: Settings) -> tuple[str, Callable[[Store], Any]]:
    coin, reason = params.optional_coin(request.query_params), params.reason(request.query_params)
    return f"quality:{coin}:{reason}", lambda s: data.quality(s, coin=coin, reason=reason)


def _market(request: Request, settings: Settings) -> tuple[str, Callable[[Store], Any]]:
    return "market", data.market_list


def _market_coin(request: Request, settings: Settings) -> tuple[str, Callable[[Store], Any]]:
    q = request.query_params
    coin = params.coin(request.path_params["coin"])
    tf, (start, end), ind = params.timeframe(q), params.date_range(q), params.indicators(q)
    key = f"market:{coin}:{tf}:{start}:{end}:{','.join(ind)}"
    return key, lambda s: data.market_coin(s, coin, timeframe=tf, start=start, end=end, indicators=ind)


def _index(request: Request, settings: Settings) -> tuple[str, Callable[[Store], Any]]:
    name = params.index_name(request.query_params)
    return f"index:{name}", lambda s: data.index_page(s, name, settings)


def _signals(request: Request, settings: Settings) -> tuple[str, Callable[[Store], Any]]:
    return "signals", data.signals_page


PAGES = {
    "overview": Page("overview", "overview.html", _overview),
    "runs": Page("runs", "runs.html", _runs),
    "run": Page("runs", "run.html", _run),
    "quality": Page("quality", "quality.html", _quality),
    "market": Page("market", "market.html", _market),
    "market_coin": Page("market", "market_coin.html", _market_coin),
    "index": Page("index", "index.html", _index),
    "signals": Page("signals", "signals.html", _signals),
}


class BearerAuth:
    """Every request must carry `Authorization: Bearer <KALLOS_DASHBOARD_TOKEN>`, compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == "/healthz":  # probes carry no token; it says only "ok"
            await self.app(scope, receive, send)
            return
        header = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value
                break
        scheme, _, given = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._token):
            await self.app(scope, receive, send)
            return
        response = PlainTextResponse(
            "authentication required: send Authorization: Bearer <KALLOS_DASHBOARD_TOKEN>",
            status_code=401,
            headers={"www-authenticate": 'Bearer realm="kallos"', **SECURITY_HEADERS},
        )
        await response(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(settings: Settings, *, reader: StoreReader | None = None) -> Starlette:
    """The dashboard application for `settings` (its store, token and refresh interval)."""
    reader = reader or StoreReader(settings.database_url)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(nav=NAV, version=kallos.__version__, fmt=views.fmt)
    templates.env.filters.update(num=views.num, pct=views.pct, when=views.when, secs=views.secs,
                                 bytes=views.human_bytes, statuses=views.statuses)  # fmt: skip

    def answer(request: Request, page: Page) -> Answer:
        key, fn = page.load(request, settings)
        return reader.read(key, fn)

    def html_view(page: Page) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            ans = answer(request, page)
            context = {
                "request": request,
                "page": page.name,
                "answer": ans,
                "d": ans.data,
                "refresh": settings.dashboard_refresh_seconds,
                "backend": reader.backend,
                "views": views,
                "query": dict(request.query_params),
            }
            if ans.data is None:
                status = 503 if ans.state == "busy" else 200
                return templates.TemplateResponse(request, "start.html", context, status_code=status)
            return templates.TemplateResponse(request, page.template, context)

        return endpoint

    def api_view(page: Page) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            ans = answer(request, page)
            body = {"state": ans.state, "as_of": data.plain(ans.as_of), "data": ans.data}
            return JSONResponse(body, status_code=503 if ans.state == "busy" and ans.data is None else 200)

        return endpoint

    def metrics(request: Request) -> Response:
        from kallos.pipeline.metrics import collect_families, registry_for

        ans = reader.read("metrics", lambda s: collect_families(s, today=_today()))
        families = list(ans.data or [])
        registry = registry_for(lambda: [*families, *_store_state(ans)])
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def favicon(request: Request) -> Response:
        # Browsers ask for /favicon.ico on documents without a <link rel="icon"> (the JSON endpoints).
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(request, 404, str(exc) if isinstance(exc, data.NotFound) else "no such page")

    async def bad_parameter(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, params.BadParameter)
        return _error(request, 422, f"invalid parameter {exc.name}: {exc.message}", parameter=exc.name)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(request, exc.status_code, exc.detail if exc.status_code != 404 else "no such page")

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("dashboard request failed", exc_info=exc, extra={"path": request.url.path})
        return _error(request, 500, "internal error: the server log has the details")

    def _error(request: Request, status: int, message: str, **extra: Any) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message, "status": status, **extra}, status_code=status)
        context = {"request": request, "page": "", "status": status, "message": message, "refresh": 0,
                   "backend": reader.backend}  # fmt: skip
        return templates.TemplateResponse(request, "error.html", context, status_code=status)

    routes: list[Any] = []
    paths = {
        "overview": "/",
        "runs": "/runs",
        "run": "/runs/{run_id}",
        "quality": "/quality",
        "market": "/market",
        "market_coin": "/market/{coin}",
        "index": "/index",
        "signals": "/signals",
    }
    for name, path in paths.items():
        page = PAGES[name]
        routes.append(Route(path, html_view(page), name=name))
        routes.append(Route("/api" + ("/overview" if path == "/" else path), api_view(page), name=f"api_{name}"))
    routes += [
        Route("/metrics", metrics, name="metrics"),
        Route("/healthz", health, name="health"),
        Route("/favicon.ico", favicon, name="favicon"),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            data.NotFound: not_found,
            params.BadParameter: bad_parameter,
            HTTPException: http_error,
            Exception: server_error,
        },
        lifespan=_lifespan(reader),
    )
    app.add_middleware(SecurityHeaders)
    token = settings.dashboard_token.get_secret_value() if settings.dashboard_token else None
    if token:
        app.add_middleware(BearerAuth, token=token)
    return app


def _lifespan(reader: StoreReader) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            reader.close()

    return lifespan


def _store_state(ans: Answer) -> list[Any]:
    from prometheus_client.core import GaugeMetricFamily

    busy = GaugeMetricFamily("kallos_store_busy", "1 while a run holds the embedded store (metrics are the last known)")
    busy.add_metric([], 1.0 if ans.state == "busy" else 0.0)
    return [busy]
