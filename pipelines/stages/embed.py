"""Stage 2, embed: a style code for every item image and every library style.

Codes are cached by the image's content hash and the model version
(``<work_dir>/code_cache/<model_version>.npz``), so an unchanged catalog costs
one hash per image.  Images that cannot be decoded go to quarantine with the
reason and are left out of rendering; the rest proceed.  The style space (the
whitening fitted on the style library) is fitted here too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from data.paths import resolve_under
from pipelines.code_cache import CodeCache, file_hash
from pipelines.context import RunContext
from pipelines.executors import make_executor
from recsys.run_bundle import ITEMS, ITEMS_RAW, STYLES, STYLES_RAW
from stylizer.image_io import ImageError
from stylizer.networks import STYLE_DIM
from stylizer.style_space import StyleSpace
from stylizer.weights import model_version

BAD_IMAGE = "bad_image"


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
    codes = (np.stack([cache.codes[h] for h in table["image_hash"]]) if keep
             else np.zeros((0, STYLE_DIM)))
    stats = {"images": len(paths), "computed": computed, "cached": len(keep) - computed, "bad": len(bad)}
    return table, codes.astype(np.float32), stats


def run(ctx: RunContext) -> dict[str, Any]:
    """Compute (or reuse) item and style codes; fit the style space on the library."""
    version = model_version()
    cache = CodeCache(ctx.config.path(ctx.config.outputs.work_dir) / "code_cache", version)
    bundle = ctx.bundle
    items = bundle.read_table(ITEMS_RAW)
    styles = bundle.read_table(STYLES_RAW)
    items, item_codes, item_stats = _codes_for(ctx, items, "item_id", cache, "catalog")
    styles, style_codes, style_stats = _codes_for(ctx, styles, "style_id", cache, "styles")
    cache.save()
    if len(styles) < 2:
        raise ValueError("the style library needs at least 2 readable style images")
    space = StyleSpace().fit(style_codes)
    # The one whitening file: the train, index and evaluate stages and serving read it.
    bundle.write_whitening(space.mean_, space.whitening_)
    bundle.write_table(ITEMS, items)
    bundle.write_table(STYLES, styles)
    bundle.write_codes(items["item_id"].astype(str).tolist(), item_codes,
                       styles["style_id"].astype(str).tolist(), style_codes)
    ctx.store.upsert_items(items[["item_id", "image_uri", "image_hash"]].assign(code=list(item_codes)))
    ctx.store.upsert_styles(styles[["style_id", "image_uri", "image_hash"]].assign(code=list(style_codes)))
    return {"model_version": version, "items": item_stats, "styles": style_stats}
