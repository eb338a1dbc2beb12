"""Optional HTTP front of :class:`~recsys.serving.PersonalizationService` (FastAPI).

Why it exists: ranking services not written in Python cannot call the
service in process; this front gives them the same answers over JSON.  It is
a thin adapter -- every decision (scoring, images, cold start, experiments,
which run answers) stays in the service, so the HTTP and in-process answers
are the same by construction and the tests compare them one to one.

Endpoints (JSON in, JSON out):

* ``POST /rank`` ``{"user_id", "candidates": [...], "k": null, "experiment": null}``
  -> ``{"run_id", "user_id", "cold_start", "unknown_items", "items": [{item_id, score,
  image_uri, segment_id, style_ids}]}``: ``cold_start`` is true when the user is
  unknown to the run (popularity order, default segment); candidates unknown to the
  run are listed in ``unknown_items`` and not scored;
* ``POST /recommend`` ``{"user_id", "k": 10, "exclude_seen": true, "experiment": null}``
  -> the same shape (``unknown_items`` empty);
* ``GET /health`` -> ``{"status": "ok", "run_id", "users", "items", "segments", "renders"}``;
* ``"style": "<style_id>"`` in ``/rank`` and ``/recommend``: the shopper's chosen look
  (:mod:`recsys.serving.overrides`); each item then carries ``style_status`` (``exact``,
  ``closest``, ``refused``, ``unavailable``) and ``style_reason``;
* ``POST /image`` ``{"user_id", "item_id", "style": null, "experiment": null}`` -> ``{"run_id",
  "user_id", "item_id", "image_uri", "style_ids", "style_status", "style_reason"}``; a style
  the library blocks for the item's category is refused with 409 and the reason.

``image_uri`` is relative to the render root (renders: ``style_ids`` non-empty)
or to the image root (originals), or a URL when the service was given URL
prefixes; never an absolute path of this server.

Request validation: ids are JSON strings (``42`` is refused: a client that
sends numbers has a bug worth seeing, and ``1.0`` vs ``1`` would name different
items); other types are refused with 422 and a message naming the field.  ``k``
must be an integer (``true``/``2.0`` are refused), candidate lists are capped at
:data:`~recsys.serving.MAX_CANDIDATES`, unknown fields are refused (a typo such
as ``"candidate"`` must not silently rank nothing).  Errors the service itself
raises (``TypeError``/``ValueError``) also become 422 with their message, never
a 500 with a traceback.  A 422 never echoes the request: each error carries
``loc``, ``msg`` and ``type`` only, and a message quotes at most
:data:`QUOTE_CHARS` characters of a value.  Bodies over ``max_body_bytes``
(default :data:`MAX_BODY_BYTES`) get 413 before any parsing.

Requires the ``serve`` extra (``pip install 'stylerec[serve]'``); nothing else
in the package imports this module.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recsys.serving.service import (
    MAX_CANDIDATES,
    PersonalizationService,
    Ranking,
    StyledRanking,
)

MAX_BODY_BYTES = 1 << 20
"""Default request body limit (1 MiB): a 100k-candidate list of short ids fits."""

QUOTE_CHARS = 40
"""At most this many characters of an offending value appear in an error message."""


def _quote(value: Any) -> str:
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError):
        shown = repr(value)
    return _clip(shown)


def _clip(text: str) -> str:
    """A field name as sent, cut to :data:`QUOTE_CHARS` (an unknown key can be huge)."""
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 3] + "..."


def _id_value(value: Any) -> str:
    """Accept a JSON string id; refuse every other type by name (integers included)."""
    if isinstance(value, str):
        return value
    kinds = {type(None): "null", bool: "boolean", int: "integer", float: "number",
             list: "array", dict: "object"}
    kind = kinds.get(type(value), type(value).__name__)
    raise ValueError(f"an id must be a string, got {kind} {_quote(value)}")


Id = Annotated[str, BeforeValidator(_id_value)]
ExperimentName = Annotated[str, Field(min_length=1, strict=True)]


class RankRequest(BaseModel):
    """Body of ``POST /rank``."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    candidates: list[Id] = Field(max_length=MAX_CANDIDATES)
    k: StrictInt | None = Field(default=None, ge=0)
    experiment: ExperimentName | None = None
    style: Id | None = None


class RecommendRequest(BaseModel):
    """Body of ``POST /recommend``."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    k: StrictInt = Field(default=10, ge=1, le=MAX_CANDIDATES)
    exclude_seen: StrictBool = True
    experiment: ExperimentName | None = None
    style: Id | None = None


class ImageRequest(BaseModel):
    """Body of ``POST /image``."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    item_id: Id
    style: Id | None = None
    experiment: ExperimentName | None = None


class ImageResponse(BaseModel):
    """Answer of ``/image``: the image one shopper sees for one item (and how it was chosen)."""

    run_id: str
    user_id: str
    item_id: str
    image_uri: str | None
    style_ids: list[str]
    style_status: str | None = None
    style_reason: str | None = None


class RankedItemOut(BaseModel):
    """One ranked item (``RankedItem`` without its run id, which the response carries once)."""

    item_id: str
    score: float
    image_uri: str | None
    segment_id: str
    style_ids: list[str]
    style_status: str | None = None
    style_reason: str | None = None


class RankingResponse(BaseModel):
    """Answer of ``/rank`` and ``/recommend``: items best first, from one run, and the fallbacks."""

    run_id: str
    user_id: str
    cold_start: bool
    unknown_items: list[str]
    items: list[RankedItemOut]


class HealthResponse(BaseModel):
    """What ``/health`` reports about the run being served."""

    status: str
    run_id: str
    users: int
    items: int
    segments: int
    renders: int


def _response(ans: Ranking | StyledRanking) -> dict[str, Any]:
    notes = getattr(ans, "style_notes", None) or {}
    return {
        "run_id": ans.run_id,
        "user_id": ans.user_id,
        "cold_start": ans.cold_start,
        "unknown_items": ans.unknown_items,
        "items": [
            {"item_id": r.item_id, "score": r.score, "image_uri": r.image_uri,
             "segment_id": r.segment_id, "style_ids": list(r.style_ids),
             **({"style_status": notes[r.item_id].status,
                 "style_reason": notes[r.item_id].reason} if r.item_id in notes else {})}
            for r in ans.items
        ],
    }


def _error(status: int, loc: list[Any], msg: str, kind: str) -> JSONResponse:
    return JSONResponse(status_code=status,
                        content={"detail": [{"loc": loc, "msg": msg, "type": kind}]})


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes``, before anything parses it.

    A declared ``Content-Length`` over the limit is refused at once; a chunked
    body is read up to the limit and refused as soon as it passes it, so a
    client cannot make the server hold more than ``max_bytes`` of one request.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = _error(413, ["body"], f"request body exceeds {self.max_bytes} bytes",
                         "body_too_large")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await too_big(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await too_big(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(service: PersonalizationService, refresh_interval_s: float | None = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """A FastAPI app answering from ``service``; bodies over ``max_body_bytes`` get 413.

    ``refresh_interval_s`` starts the service's auto-refresh poller when the
    app starts and stops it at shutdown (``None``: the served run never
    changes unless someone calls ``service.refresh()``).  Endpoints are plain
    ``def`` functions: FastAPI runs them in its thread pool, and the service is
    thread-safe without locks (see :mod:`recsys.serving.service`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if refresh_interval_s:
            service.start_auto_refresh(refresh_interval_s)
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="stylerec ranking service",
        description="Ranks items for a shopper and says which image (render) to show.",
        lifespan=lifespan,
    )
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default answer carries each error's "input" (and "ctx"): the
        # offending value, however large. Keep where and what, never the input.
        detail = [{"loc": [x if isinstance(x, int) else _clip(str(x)) for x in e.get("loc", ())],
                   "msg": str(e.get("msg", "invalid"))[:300],
                   "type": str(e.get("type", "value_error"))} for e in exc.errors()[:20]]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(TypeError)
    @app.exception_handler(ValueError)
    async def _bad_request(request: Request, exc: Exception) -> JSONResponse:
        # Same shape as the validation errors, so clients parse one format.
        return _error(422, ["body"], str(exc)[:300], "value_error")

    # exclude_unset: style_status/style_reason appear only when a style was asked for.
    @app.post("/rank", response_model=RankingResponse, response_model_exclude_unset=True)
    def rank(req: RankRequest) -> dict[str, Any]:
        """Rank ``candidates`` for ``user_id``, best first, with the image to show."""
        return _response(service.rank_response(req.user_id, req.candidates, k=req.k,
                                               experiment=req.experiment, style=req.style))

    # exclude_unset: style_status/style_reason appear only when a style was asked for.
    @app.post("/recommend", response_model=RankingResponse, response_model_exclude_unset=True)
    def recommend(req: RecommendRequest) -> dict[str, Any]:
        """The ``k`` best items of the whole catalogue for ``user_id``."""
        return _response(service.recommend_response(req.user_id, req.k,
                                                    exclude_seen=req.exclude_seen,
                                                    experiment=req.experiment, style=req.style))

    @app.post("/image", response_model=ImageResponse,
              responses={409: {"description": "the style is refused for this item"}})
    def image(req: ImageRequest) -> Any:
        """The image ``user_id`` sees for ``item_id`` (in the chosen ``style`` when given)."""
        if req.style is None:  # what rank would show for it (one run answers)
            got = service.rank_response(req.user_id, [req.item_id], experiment=req.experiment)
            it = got.items[0] if got.items else None
            return {"run_id": got.run_id, "user_id": req.user_id, "item_id": req.item_id,
                    "image_uri": None if it is None else it.image_uri,
                    "style_ids": [] if it is None else list(it.style_ids)}
        run_id = service.run_id
        ans = service.image_for(req.user_id, req.item_id, experiment=req.experiment,
                                style=req.style)
        if ans.status == "refused":
            return _error(409, ["body", "style"], ans.reason, "style_refused")
        return {"run_id": run_id, "user_id": req.user_id, "item_id": req.item_id,
                "image_uri": ans.image_uri, "style_ids": list(ans.style_ids),
                "style_status": ans.status, "style_reason": ans.reason}

    @app.get("/health", response_model=HealthResponse)
    def health() -> dict[str, Any]:
        """Liveness plus the run being served (for load balancers and dashboards)."""
        snap = service.snapshot()
        return {
            "status": "ok",
            "run_id": snap.run_id,
            "users": len(snap.user_row),
            "items": len(snap.item_ids),
            "segments": len(snap.segment_ids),
            "renders": int(snap.n_renders),
        }

    return app


__all__ = ["MAX_BODY_BYTES", "BodyLimit", "HealthResponse", "ImageRequest", "ImageResponse",
           "RankRequest", "RankingResponse", "RecommendRequest", "create_app"]
