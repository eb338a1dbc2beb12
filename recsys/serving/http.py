"""Optional HTTP front of :class:`~recsys.serving.PersonalizationService` (FastAPI).

Why it exists: ranking services not written in Python cannot call the
service in process; this front gives them the same answers over JSON.  It is
a thin adapter -- every decision (scoring, images, cold start, experiments,
which run answers) stays in the service, so the HTTP and in-process answers
are the same by construction and the tests compare them one to one.

Endpoints (JSON in, JSON out):

* ``POST /rank`` ``{"user_id", "candidates": [...], "k": null, "experiment": null}``
  -> ``{"run_id", "user_id", "items": [{item_id, score, image_uri, segment_id, style_ids}]}``;
* ``POST /recommend`` ``{"user_id", "k": 10, "exclude_seen": true, "experiment": null}``
  -> the same shape;
* ``GET /health`` -> ``{"status": "ok", "run_id", "users", "items", "segments", "renders"}``.

Request validation: ids are JSON strings or integers (integers are turned
into strings, as in the Python API); floats, booleans, null, lists and
objects are refused with 422 and a message naming the field and the value.
``k`` must be an integer (``true``/``2.0`` are refused), candidate lists are
capped at :data:`~recsys.serving.MAX_CANDIDATES`, unknown fields are refused
(a typo such as ``"candidate"`` must not silently rank nothing).  Errors the
service itself raises (``TypeError``/``ValueError``) also become 422 with
their message, never a 500 with a traceback.

Requires the ``serve`` extra (``pip install 'stylerec[serve]'``); nothing else
in the package imports this module.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt

from recsys.serving.service import MAX_CANDIDATES, PersonalizationService, RankedItem


def _id_value(value: Any) -> str:
    """Accept a JSON string or integer id (int -> str); refuse every other type by name."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    kinds = {type(None): "null", bool: "boolean", float: "number", list: "array", dict: "object"}
    kind = kinds.get(type(value), type(value).__name__)
    try:
        shown = json.dumps(value)[:80]
    except (TypeError, ValueError):
        shown = repr(value)[:80]
    raise ValueError(f"an id must be a string or an integer, got {kind} {shown}")


Id = Annotated[str, BeforeValidator(_id_value)]
ExperimentName = Annotated[str, Field(min_length=1, strict=True)]


class RankRequest(BaseModel):
    """Body of ``POST /rank``."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    candidates: list[Id] = Field(max_length=MAX_CANDIDATES)
    k: StrictInt | None = Field(default=None, ge=0)
    experiment: ExperimentName | None = None


class RecommendRequest(BaseModel):
    """Body of ``POST /recommend``."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    k: StrictInt = Field(default=10, ge=1, le=MAX_CANDIDATES)
    exclude_seen: StrictBool = True
    experiment: ExperimentName | None = None


class RankedItemOut(BaseModel):
    """One ranked item (``RankedItem`` without its run id, which the response carries once)."""

    item_id: str
    score: float
    image_uri: str | None
    segment_id: str
    style_ids: list[str]


class RankingResponse(BaseModel):
    """Answer of ``/rank`` and ``/recommend``: items best first, from one run."""

    run_id: str
    user_id: str
    items: list[RankedItemOut]


class HealthResponse(BaseModel):
    """What ``/health`` reports about the run being served."""

    status: str
    run_id: str
    users: int
    items: int
    segments: int
    renders: int


def _response(svc: PersonalizationService, user_id: str, items: list[RankedItem]) -> dict[str, Any]:
    # An empty answer has no item to name its run; the served run is the honest answer then.
    run_id = items[0].run_id if items else svc.run_id
    return {
        "run_id": run_id,
        "user_id": user_id,
        "items": [
            {"item_id": r.item_id, "score": r.score, "image_uri": r.image_uri,
             "segment_id": r.segment_id, "style_ids": list(r.style_ids)}
            for r in items
        ],
    }


def create_app(service: PersonalizationService, refresh_interval_s: float | None = None
               ) -> FastAPI:
    """A FastAPI app answering from ``service``.

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
    app.state.service = service

    @app.exception_handler(TypeError)
    @app.exception_handler(ValueError)
    async def _bad_request(request: Request, exc: Exception) -> JSONResponse:
        # Same shape as FastAPI's own validation errors, so clients parse one format.
        return JSONResponse(
            status_code=422,
            content={"detail": [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]},
        )

    @app.post("/rank", response_model=RankingResponse)
    def rank(req: RankRequest) -> dict[str, Any]:
        """Rank ``candidates`` for ``user_id``, best first, with the image to show."""
        items = service.rank(req.user_id, req.candidates, k=req.k, experiment=req.experiment)
        return _response(service, req.user_id, items)

    @app.post("/recommend", response_model=RankingResponse)
    def recommend(req: RecommendRequest) -> dict[str, Any]:
        """The ``k`` best items of the whole catalogue for ``user_id``."""
        items = service.recommend(req.user_id, req.k, exclude_seen=req.exclude_seen,
                                  experiment=req.experiment)
        return _response(service, req.user_id, items)

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


__all__ = ["HealthResponse", "RankRequest", "RankingResponse", "RecommendRequest", "create_app"]
