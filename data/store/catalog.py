"""The catalogue in SQL: items and styles, bulk upserts, style codes as float32 bytes."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from data.ids import id_problem

from .models import Item, Style
from .repository import Repository
from .rows import IN_CHUNK, check_columns, chunks, json_obj, opt_str, records, req_str
from .types import decode_vector, encode_vector, utcnow

log = logging.getLogger(__name__)


class CatalogRepository(Repository):
    """Items and styles: upserts that update only the columns given, reads with decoded codes."""

    _OPTIONAL = {
        "items": ("image_uri", "category", "attributes", "image_hash", "code"),
        "styles": ("name", "image_uri", "attributes", "image_hash", "code"),
    }

    def upsert_items(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        """Insert or update catalogue items in one transaction; return the number of rows.

        Columns: ``item_id`` (required), ``image_uri``, ``category``,
        ``attributes`` (dict or JSON text), ``image_hash``, ``code`` (float
        vector, JSON list or float32 bytes).  Only the columns given are
        updated on existing items, so codes can be added later without
        repeating the rest.  Later duplicates of an id win.
        """
        return self._upsert(Item.__table__, "item_id", "items", rows)

    def upsert_styles(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        """Like :meth:`upsert_items` for the style library: ``style_id``, ``name``, ``image_uri``,
        ``attributes``, ``image_hash``, ``code``."""
        return self._upsert(Style.__table__, "style_id", "styles", rows)

    def _upsert(self, table: Any, key: str, what: str, rows: Any) -> int:
        optional = self._OPTIONAL[what]
        cols, recs = records(rows, what)
        if not cols:
            return 0
        check_columns(cols, (key,), optional, what)
        present = [c for c in optional if c in cols]
        now = utcnow()

        def convert(i: int, rec: Mapping[str, Any]) -> dict[str, Any]:
            where = f"{what} row {i}"
            ident = req_str(rec.get(key), where, key)
            problem = id_problem(ident)
            if problem is not None:
                # The id policy of data.ids: refused here too, with the row named, rather
                # than a driver error on PostgreSQL and silent acceptance on SQLite.
                raise ValueError(f"{where}: {key} breaks the id policy ({problem})")
            where = f"{what} row {i} ({key}={ident!r})"
            out: dict[str, Any] = {key: ident, "updated_at": now, "attributes": {}}
            for c in present:
                v = rec.get(c)
                if c == "attributes":
                    out[c] = json_obj(v, where, c)
                elif c == "code":
                    out[c] = encode_vector(v, what=f"{where}: code")
                else:
                    out[c] = opt_str(v)
            return out

        n = 0
        with self.db.write() as conn:
            stmt = self.db.upsert(conn, table)
            stmt = stmt.on_conflict_do_update(
                index_elements=[key],
                set_={c: stmt.excluded[c] for c in (*present, "updated_at")},
            )
            converted = (convert(i, r) for i, r in enumerate(recs))
            for chunk in chunks(converted, self.db.chunk_size):
                # Dedupe inside a batch: a multi-row upsert may not touch a row twice.
                batch = list({r[key]: r for r in chunk}.values())
                conn.execute(stmt, batch)
                n += len(chunk)
        log.info("upserted %d %s", n, what)
        return n

    def get_items(self, item_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Items as a DataFrame; ``code`` holds float32 arrays (or ``None``), ``attributes`` dicts."""
        return self._get(Item, "item_id", ("image_uri", "category"), item_ids)

    def get_styles(self, style_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Styles as a DataFrame, like :meth:`get_items`."""
        return self._get(Style, "style_id", ("name", "image_uri"), style_ids)

    def _get(
        self, model: Any, key: str, text_cols: Sequence[str], ids: Iterable[str] | None
    ) -> pd.DataFrame:
        cols = [key, *text_cols, "attributes", "image_hash", "code", "updated_at"]
        columns = [getattr(model, c) for c in cols]
        rows: list[Any] = []
        with self.db.read() as conn:
            if ids is None:
                rows = conn.execute(select(*columns).order_by(getattr(model, key))).all()
            else:
                for chunk in chunks(dict.fromkeys(map(str, ids)), IN_CHUNK):
                    stmt = select(*columns).where(getattr(model, key).in_(chunk))
                    rows.extend(conn.execute(stmt).all())
                rows.sort(key=lambda r: r[0])
        df = pd.DataFrame([tuple(r) for r in rows], columns=cols)
        df["code"] = [decode_vector(b) for b in df["code"]]
        return df

    def item_codes(self, item_ids: Iterable[str] | None = None) -> tuple[list[str], np.ndarray]:
        """``(ids, codes[N, D])`` for items that have a style code, ordered by id."""
        return _codes(self.get_items(item_ids), "item_id")

    def style_codes(self, style_ids: Iterable[str] | None = None) -> tuple[list[str], np.ndarray]:
        """``(ids, codes[N, D])`` for styles that have a style code, ordered by id."""
        return _codes(self.get_styles(style_ids), "style_id")


def _codes(df: pd.DataFrame, key: str) -> tuple[list[str], np.ndarray]:
    have = df[df["code"].map(lambda c: c is not None)]
    if have.empty:
        return [], np.zeros((0, 0), dtype=np.float32)
    dims = {len(c) for c in have["code"]}
    if len(dims) != 1:
        raise ValueError(f"stored {key} codes have mixed dimensions {sorted(dims)}")
    return list(have[key]), np.stack(list(have["code"])).astype(np.float32, copy=False)
