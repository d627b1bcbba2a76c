"""The dashboard server: built by ``create_app`` with explicit arguments, read-only unless given a token.

Pages read the store on every request (a dashboard beside a running loop shows what others just
wrote); the Monitor and Serving pages poll JSON routes. Changes of state (promote, roll back, forget
feedback) are POST forms that need the token and call the same public functions as the CLI.
Bad input is a 4xx with one line; a store that fails is a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import threading
import time
from collections.abc import AsyncIterator
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from dcloop.errors import ConfigError, DataError, DcloopError, NotFoundError
from dcloop.ui import _live, _model_pages, _pages, _run_pages
from dcloop.ui._layout import page
from dcloop.ui._serving import Scraper
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)
MAX_FORM_BYTES = 64 * 1024
DRIFT_CACHE_S = 120.0
STATIC = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}


def create_app(
    ws: Workspace, *, token: str | None = None, metrics_url: str | None = None, warm: bool = False
) -> FastAPI:
    """The dashboard of ``ws``. ``token`` enables the write actions; ``metrics_url`` is the server's
    /metrics; ``warm`` counts the prediction log's aggregates in the background at start, so the first
    visit to a page finds them ready."""
    from dcloop.ui._queries import serving_url

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm:
            threading.Thread(target=_warm, args=(ws,), name="dcloop-ui-warm", daemon=True).start()
        yield

    app = FastAPI(
        title="dcloop dashboard", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.ws, app.state.token = ws, token
    app.state.scraper = Scraper(serving_url(ws, metrics_url))
    app.state.drift = {}
    _add_pages(app)
    _add_api(app)
    _add_actions(app)
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(DcloopError, _dcloop_error)  # type: ignore[arg-type]
    return app


def _warm(ws: Workspace) -> None:
    from dcloop.ui import _queries as q

    try:
        q.feedback(ws)
        q.version_scores(ws)
        q.monitor_series(ws, None, None)
    except DcloopError as exc:  # the pages count again on their first visit and show the error then
        log.warning("counting the prediction log at start failed: %s", exc)


def _ws(request: Request) -> Workspace:
    return request.app.state.ws


def _writable(request: Request) -> bool:
    return request.app.state.token is not None


def _text(request: Request, name: str, limit: int = 200) -> str | None:
    """A query parameter as stripped text (None when absent or empty); too long is a 400."""
    value = request.query_params.get(name)
    if value is None or not value.strip():
        return None
    if len(value) > limit or "\x00" in value:
        raise HTTPException(400, f"Query parameter `{name}` must be text of at most {limit} characters.")
    return value.strip()


def _days(request: Request) -> float | None:
    text = _text(request, "days", 20)
    if text is None:
        return None
    try:
        days = float(text)
    except ValueError:
        days = math.nan
    if not (0 < days <= 36500):
        raise HTTPException(
            400, f"Query parameter `days` must be a number of days in (0, 36500]. Got {text!r}."
        )
    return days


def _html(request: Request, title: str, active: str, body: str, notice: str = "") -> HTMLResponse:
    return HTMLResponse(page(title, active, body, writable=_writable(request), notice=notice))


async def _run(func: Any, *args: Any) -> Any:
    """Store reads in a worker thread: the event loop keeps answering while SQLite or PostgreSQL works."""
    return await asyncio.to_thread(func, *args)


def _add_pages(app: FastAPI) -> None:
    @app.get("/")
    async def loop(request: Request) -> HTMLResponse:
        body = await _run(_pages.loop_page, _ws(request), _writable(request))
        return _html(request, "Loop", "loop", body, _text(request, "done") or "")

    @app.get("/data")
    async def data(request: Request) -> HTMLResponse:
        return _html(
            request, "Data", "data", await _run(_pages.data_page, _ws(request), _text(request, "version", 64))
        )

    @app.get("/runs")
    async def runs(request: Request) -> HTMLResponse:
        args = (_text(request, "kind", 32), _text(request, "status", 16), _text(request, "model", 100))
        return _html(request, "Runs", "runs", await _run(_run_pages.runs_page, _ws(request), *args))

    @app.get("/runs/compare")
    async def compare(request: Request) -> HTMLResponse:
        refs = [r.strip() for r in request.query_params.getlist("ids") for r in r.split(",") if r.strip()]
        if not 2 <= len(refs) <= 8 or any(len(r) > 32 or not r.isalnum() for r in refs):
            raise HTTPException(400, "Compare needs 2 to 8 run ids (`ids`, letters and digits).")
        return _html(request, "Compare runs", "runs", await _run(_run_pages.compare_page, _ws(request), refs))

    @app.get("/runs/{ref}")
    async def run(request: Request, ref: str) -> HTMLResponse:
        if len(ref) > 32 or not ref.isalnum():
            raise HTTPException(404, f"No run {ref[:40]!r}.")
        return _html(request, f"Run {ref[:12]}", "runs", await _run(_run_pages.run_page, _ws(request), ref))

    @app.get("/models")
    async def models(request: Request) -> HTMLResponse:
        body = await _run(_model_pages.models_page, _ws(request), _writable(request))
        return _html(request, "Models", "models", body, _text(request, "done") or "")

    @app.get("/monitor")
    async def monitor(request: Request) -> HTMLResponse:
        body = await _run(_live.monitor_page, _ws(request), _text(request, "model"), _days(request))
        return _html(request, "Monitor", "monitor", body)

    @app.get("/serving")
    async def serving(request: Request) -> HTMLResponse:
        scraper = request.app.state.scraper
        live = _live.serving_live(await _run(scraper.read), scraper.url)
        return _html(request, "Serving", "serving", _live.serving_page(live))

    @app.get("/plan")
    async def plan(request: Request) -> HTMLResponse:
        kind = _text(request, "kind", 8)
        if kind not in (None, "train", "serve"):
            raise HTTPException(400, f"Query parameter `kind` must be train or serve. Got {kind!r}.")
        keys = {k for k, _, _ in _live.PLAN_KEYS.get(kind or "", [])}
        values = {k: _text(request, k, 40) or "" for k in keys}
        answer, error = None, None
        if kind is not None:
            try:
                answer = await _run(_live.plan_answer, _ws(request), kind, values)
            except (ConfigError, DataError, NotFoundError) as exc:
                error = str(exc)
        status = 422 if error else 200
        response = _html(request, "Plan", "plan", _live.plan_page(kind or "", values, answer, error))
        response.status_code = status
        return response

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, f"No static file {name[:40]!r}.")
        text = resources.files("dcloop.ui").joinpath("static", name).read_bytes()
        return Response(text, media_type=STATIC[name], headers={"Cache-Control": "max-age=300"})


def _add_api(app: FastAPI) -> None:
    @app.get("/api/monitor")
    async def monitor(request: Request) -> JSONResponse:
        live = await _run(_live.monitor_live, _ws(request), _text(request, "model"), _days(request))
        return JSONResponse(live)

    @app.get("/api/monitor/drift")
    async def drift(request: Request) -> JSONResponse:
        """Drift needs the stored inputs and the model: computed at most every 2 min per query, in a thread."""
        model, days = _text(request, "model"), _days(request)
        key, cache = (model, days), request.app.state.drift
        hit = cache.get(key)
        if hit is None or time.monotonic() - hit[0] > DRIFT_CACHE_S:
            hit = cache[key] = (time.monotonic(), await _run(_drift, _ws(request), model, days))
        return JSONResponse({"html": hit[1]})

    @app.get("/api/serving")
    async def serving(request: Request) -> JSONResponse:
        scraper = request.app.state.scraper
        return JSONResponse(_live.serving_live(await _run(scraper.read), scraper.url))


def _drift(ws: Workspace, model: str | None, days: float | None) -> str:
    from dcloop.feedback import monitor
    from dcloop.ui._queries import since_days

    cfg = ws.config.monitor
    try:
        result = monitor(ws, model, since_days(days), export_alerts=False)
    except (NotFoundError, DataError) as exc:
        return f'<p class="muted">{escape(str(exc))}</p>'
    return _live.drift_html(result, cfg.psi_threshold, cfg.ks_pvalue)


async def _form(request: Request) -> dict[str, str]:
    """The posted form (urlencoded), after the token check: 403 read-only, 401 missing, 403 wrong."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, f"Form is larger than {MAX_FORM_BYTES} bytes.")
    try:
        fields = {k: v[-1] for k, v in parse_qs(body.decode("utf-8"), max_num_fields=20).items()}
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "Form must be URL-encoded UTF-8 text.") from None
    expected: str | None = request.app.state.token
    if expected is None:
        raise HTTPException(
            403, "This dashboard is read-only: start `dcloop ui` with the token set to allow changes."
        )
    given = fields.get("token", "")
    if not given:
        raise HTTPException(401, "This change needs the token (field `token`).")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(403, "The token is not valid for this dashboard.")
    return fields


def _field(fields: dict[str, str], name: str, limit: int = 200) -> str:
    value = fields.get(name, "").strip()
    if not value or len(value) > limit:
        raise HTTPException(422, f"Form field `{name}` is required (at most {limit} characters).")
    return value


def _version(fields: dict[str, str]) -> int | None:
    text = fields.get("version", "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise HTTPException(422, f"Form field `version` must be a version number. Got {text[:20]!r}.")
    return int(text)


def _add_actions(app: FastAPI) -> None:
    @app.post("/actions/promote")
    async def promote(request: Request) -> Response:
        from dcloop.deploy import GateRefused, promote

        fields = await _form(request)
        name, version = _field(fields, "model"), _version(fields)
        reason = fields.get("reason", "").strip()[:500] or None
        try:
            done = await _run(lambda: promote(_ws(request), name, version=version, reason=reason))
        except GateRefused as exc:
            raise HTTPException(409, str(exc)) from None
        except DcloopError as exc:
            raise _refused(exc) from None
        move = done.move
        return _done(f"{name}@{move.to_version} is now {move.alias} ({move.reason}).")

    @app.post("/actions/rollback")
    async def rollback(request: Request) -> Response:
        from dcloop.deploy import rollback

        fields = await _form(request)
        name = _field(fields, "model")
        reason = fields.get("reason", "").strip()[:500] or None
        try:
            move = await _run(lambda: rollback(_ws(request), name, reason=reason))
        except DcloopError as exc:
            raise _refused(exc) from None
        return _done(f"{name}: {move.alias} rolled back from {move.from_version} to {move.to_version}.")

    @app.post("/actions/forget")
    async def forget(request: Request) -> Response:
        from dcloop.store.predictions import forget

        fields = await _form(request)
        ids = [i for i in fields.get("ids", "").replace(",", " ").split() if i][:10_000]
        if not ids or any(len(i) > 32 or not i.isalnum() for i in ids):
            raise HTTPException(422, "Form field `ids` must list prediction ids (letters and digits).")
        count = await _run(forget, _ws(request).store, ids)
        return _done(f"Forgot the stored inputs of {count} prediction(s).", "/")


def _refused(exc: DcloopError) -> HTTPException:
    """An action the registry refuses: 404 for an unknown model or version, else 409 (nothing changed)."""
    return HTTPException(404 if isinstance(exc, NotFoundError) else 409, str(exc))


def _done(message: str, where: str = "/models") -> Response:
    return RedirectResponse(f"{where}?done={quote(message[:190])}", status_code=303)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "html" not in request.headers.get("accept", "")


def _error(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    body = f'<p class="error" role="alert">{escape(message)}</p><p><a href="/">back to the loop</a></p>'
    return HTMLResponse(page(f"Error {status}", "", body, writable=_writable(request)), status_code=status)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return _error(request, exc.status_code, str(exc.detail))


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    return _error(request, 422, f"Invalid request: {exc.errors()[:1]}")


async def _dcloop_error(request: Request, exc: DcloopError) -> Response:
    """A named thing missing is 404, bad input 422; anything else (the store is down) 503, retry later."""
    if isinstance(exc, NotFoundError):
        return _error(request, 404, str(exc))
    if isinstance(exc, DataError | ConfigError):
        return _error(request, 422, str(exc))
    log.error("dashboard request failed: %s", exc)
    response = _error(request, 503, str(exc))
    response.headers["Retry-After"] = "5"
    return response
