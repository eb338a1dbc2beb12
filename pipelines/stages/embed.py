"""Stage 2, embed: a style code for every item image and every library style.

Codes are cached by the image's content hash and the model version
(``<work_dir>/code_cache/<model_version>.npz``), so an unchanged catalog costs
one hash per image.  Images that cannot be decoded go to quarantine with the
reason and are left out of rendering; the rest proceed.  The style space (the
whitening fitted on the style library) is fitted here too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.paths import resolve_under
from pipelines.executors import make_executor
from pipelines.runner import RunContext
from pipelines.stages.artifacts import (
    CODES,
    ITEMS,
    ITEMS_RAW,
    STYLE_SPACE,
    STYLES,
    STYLES_RAW,
    WHITENING,
)
from stylizer.image_io import ImageError, open_regular_file
from stylizer.style_space import StyleSpace
from stylizer.weights import model_version

BAD_IMAGE = "bad_image"


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes (the cache key of its style code and renders)."""
    h = hashlib.sha256()
    # Never a plain open(): a FIFO in the image folder would block the night forever.
    with open_regular_file(path) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class CodeCache:
    """Style codes by image hash for one model version, in one npz written atomically."""

    def __init__(self, folder: Path, version: str) -> None:
        self.path = folder / f"{version}.npz"
        self.codes: dict[str, np.ndarray] = {}
        if self.path.is_file():
            with np.load(self.path, allow_pickle=False) as z:
                self.codes = dict(zip(z["hashes"].tolist(), z["codes"], strict=True))

    def save(self) -> None:
        """Write the cache (temp file + rename, so a crash keeps the old one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        hashes = np.array(sorted(self.codes), dtype=str)
        codes = np.stack([self.codes[h] for h in hashes]) if len(hashes) else np.zeros((0, 100))
        tmp = self.path.with_name(self.path.name + ".partial.npz")
        np.savez(tmp, hashes=hashes, codes=codes.astype(np.float32))
        tmp.replace(self.path)


def _codes_for(
    ctx: RunContext, table: pd.DataFrame, id_col: str, cache: CodeCache, source: str
) -> tuple[pd.DataFrame, np.ndarray, dict[str, int]]:
    """Hash, look up or compute the codes of ``table``'s images; quarantine the bad ones."""
    root = ctx.config.path(ctx.config.inputs.image_root)
    has_image = table["image_uri"].notna() & (table["image_uri"].astype(str) != "")
    table = table[has_image].reset_index(drop=True)
    paths: list[str] = []
    hashes: list[str | None] = []
    bad: dict[int, str] = {}
    for i, uri in enumerate(table["image_uri"].astype(str)):
        p = resolve_under(root, uri)
        paths.append(str(p))
        try:
            hashes.append(file_hash(p))
        except ImageError as exc:  # not a regular file
            hashes.append(None)
            bad[i] = str(exc)
        except OSError as exc:
            hashes.append(None)
            bad[i] = f"{p}: cannot read image file ({exc.strerror or exc})"
    todo = [i for i, h in enumerate(hashes) if h is not None and h not in cache.codes]
    computed = 0
    if todo:
        outcome = make_executor(ctx.config).embed([paths[i] for i in todo])
        for j, i in enumerate(todo):
            if j in outcome.errors:
                bad[i] = outcome.errors[j]
            else:
                cache.codes[hashes[i]] = outcome.codes[j]  # type: ignore[index]
                computed += 1
    if bad:
        rows = table.iloc[sorted(bad)].astype(str).assign(
            reason=BAD_IMAGE, detail=[bad[i] for i in sorted(bad)]
        )
        ctx.store.add_quarantine(ctx.run_id, source, rows)
    keep = [i for i in range(len(table)) if i not in bad]
    table = table.iloc[keep].reset_index(drop=True).assign(
        image_hash=[hashes[i] for i in keep], image_path=[paths[i] for i in keep]
    )
    codes = np.stack([cache.codes[h] for h in table["image_hash"]]) if keep else np.zeros((0, 100))
    stats = {"images": len(paths), "computed": computed, "cached": len(keep) - computed, "bad": len(bad)}
    return table, codes.astype(np.float32), stats


def run(ctx: RunContext) -> dict[str, Any]:
    """Compute (or reuse) item and style codes; fit the style space on the library."""
    version = model_version()
    cache = CodeCache(ctx.config.path(ctx.config.outputs.work_dir) / "code_cache", version)
    items = pd.read_parquet(ctx.run_dir / ITEMS_RAW)
    styles = pd.read_parquet(ctx.run_dir / STYLES_RAW)
    items, item_codes, item_stats = _codes_for(ctx, items, "item_id", cache, "catalog")
    styles, style_codes, style_stats = _codes_for(ctx, styles, "style_id", cache, "styles")
    cache.save()
    if len(styles) < 2:
        raise ValueError("the style library needs at least 2 readable style images")
    space = StyleSpace().fit(style_codes)
    space.save(ctx.run_dir / STYLE_SPACE)
    np.savez(ctx.run_dir / WHITENING, mean=space.mean_, matrix=space.whitening_)
    items.to_parquet(ctx.run_dir / ITEMS, index=False)
    styles.to_parquet(ctx.run_dir / STYLES, index=False)
    np.savez(
        ctx.run_dir / CODES,
        item_ids=np.asarray(items["item_id"], dtype=str),
        item_codes=item_codes,
        style_ids=np.asarray(styles["style_id"], dtype=str),
        style_codes=style_codes,
    )
    ctx.store.upsert_items(items[["item_id", "image_uri", "image_hash"]].assign(code=list(item_codes)))
    ctx.store.upsert_styles(styles[["style_id", "image_uri", "image_hash"]].assign(code=list(style_codes)))
    return {"model_version": version, "items": item_stats, "styles": style_stats}
