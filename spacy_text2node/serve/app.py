"""The FastAPI app of `text2node serve`: /link, /concepts/{id}, /health, /info, the review page at /.

    from spacy_text2node.serve import ServeSettings, create_app
    app = create_app(ServeSettings(model="my_linker", mentions="ruler"))   # run with uvicorn

The pipeline is loaded once per worker process, when the app starts (its lifespan), and runs on a
thread of its own; a request that takes longer than the timeout is answered with 503.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Optional, Union

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ..about import __version__
from . import schemas
from .limits import BodyLimit
from .requests import RequestError, parse_body, parse_link_request
from .service import LinkService
from .settings import ServeSettings

logger = logging.getLogger("spacy_text2node")

STATIC = Path(str(resources.files("spacy_text2node.serve") / "static"))
ERRORS: Dict[Union[int, str], Dict[str, Any]] = {
    status: {"model": schemas.ErrorOut} for status in (400, 404, 413, 422, 500, 503)
}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def create_app(settings: Optional[ServeSettings] = None, *, service: Optional[LinkService] = None) -> FastAPI:
    """Build the service's app.

    settings (Optional[ServeSettings]): what to serve (None: read from the environment variable
        that `text2node serve` sets for its worker processes, see `ServeSettings.from_env`).
    service (Optional[LinkService]): an already loaded pipeline (its settings are used); None
        loads the pipeline when the app starts.
    RETURNS (FastAPI): the app.
    """
    if service is not None:
        settings = service.settings
    settings = (settings or ServeSettings.from_env()).check()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.service is None:
            app.state.service = LinkService.load(settings)
        try:
            yield
        finally:
            app.state.service.close()

    app = FastAPI(
        title="spacy-text2node",
        version=__version__,
        description="Link clinical text to taxonomy concepts. The review page is at /.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return _error(422, "; ".join(parts) + ". See /docs for what each endpoint takes.")

    @app.post(
        "/link",
        response_model=Union[schemas.LinkRecord, schemas.LinkBatch],
        responses=ERRORS,
        summary="Link one text or a batch",
    )
    async def link(request: Request) -> JSONResponse:
        """One text, `{"text": "...", "id": "..."}`, is answered with its record; a batch,
        `{"texts": [...]}` or `{"records": [{"id", "text"}, ...]}`, with `{"records": [...]}`.
        Records have the shape of `text2node link`'s output (plus `negated` per span with --negation)."""
        svc: LinkService = request.app.state.service
        body = parse_link_request(
            parse_body(await request.body()), max_chars=svc.settings.max_chars, max_batch=svc.settings.max_batch
        )
        future = svc.executor.submit(svc.link, body.items, body.top_k, body.render)
        try:
            records = await asyncio.wait_for(asyncio.wrap_future(future), timeout=svc.settings.timeout)
        except asyncio.TimeoutError:
            future.cancel()
            n = sum(len(t) for t, _ in body.items)
            raise RequestError(
                503,
                f"Linking {len(body.items)} text(s) of {n:,} characters took longer than the server's limit of "
                f"{svc.settings.timeout:g} s (--timeout), counting the wait behind other requests: send shorter "
                f"texts or smaller batches, retry later, or start the server with a larger --timeout.",
            ) from None
        except Exception as e:  # a pipeline bug: answer it, log it, keep serving
            logger.exception("text2node serve: linking failed")
            raise RequestError(
                500,
                f"Linking failed: {type(e).__name__}: {e}. The server keeps serving; "
                f"please report this with the text that caused it.",
            ) from None
        return JSONResponse(records[0] if body.single else {"records": records})

    @app.get(
        "/concepts/{concept_id:path}",
        response_model=schemas.ConceptOut,
        responses=ERRORS,
        summary="A concept with its neighbourhood",
    )
    async def concept(concept_id: str, request: Request) -> Dict[str, Any]:
        """Label, synonyms, definition, parents, children, every ancestor and a shortest path to a root."""
        return request.app.state.service.concept(concept_id)

    @app.get("/health", response_model=schemas.Health, summary="Liveness")
    async def health() -> Dict[str, str]:
        """`{"status": "ok"}` once the pipeline is loaded."""
        return {"status": "ok"}

    @app.get("/info", response_model=schemas.Info, summary="What this worker serves")
    async def info(request: Request) -> Dict[str, Any]:
        """Pipeline components, taxonomy name and size, limits and versions."""
        return request.app.state.service.info()

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def openapi() -> Dict[str, Any]:
        # /link reads its body itself (for messages that say what to send); document the shape it takes
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            req = schemas.LinkRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            components.update(req.pop("$defs", {}))
            components["LinkRequest"] = req
            spec["paths"]["/link"]["post"]["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LinkRequest"}}},
            }
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def create_app_from_env() -> FastAPI:
    """The app factory uvicorn's worker processes call (`text2node serve --workers N`).

    RETURNS (FastAPI): the app, with the settings read from the environment.
    """
    return create_app(ServeSettings.from_env())
