"""The run bundle: every file of one nightly run, written and read with types, in one place.

Why one module: the nightly stages write a run's files and the serving
snapshot reads them.  When each side spelled the layout out itself (raw
``np.savez``/``json`` in the stages, a second set of writers in
``recsys.serving.bundle``), the two drifted -- the whitening was written twice,
under two names.  Here each file has one writer and one reader, so a change to
a file's layout is made once and a test can round-trip every file.

It lives in :mod:`recsys` (not :mod:`pipelines`) because serving, which may
not import :mod:`pipelines`, reads it too.  It imports neither PyTorch nor
FAISS at module level (the model and the indices are loaded on demand), so a
ranking process that reads a bundle stays light.

Layout of ``<work_dir>/runs/<run_id>/`` (format 2; npz/json/parquet, never pickle), by stage:
``bundle.json`` (the manifest: kind, format_version, files written); ingest:
``events.parquet``, ``items_raw.parquet``, ``styles_raw.parquet``; embed: ``items.parquet``,
``styles.parquet``, ``codes.npz`` (raw codes), ``whitening.npz`` (``(raw - mean) @ matrix``);
train: ``model.npz``/``model.json``, ``user_map.json``, ``item_map.json``; index:
``style_embeddings.npz``, ``style_index/``, ``item_index/``, ``top_styles.parquet``; segment:
``segmentation/`` (segments.json: ids, default segment, next number; segments.npz:
centroids) and ``conditions.json`` (per segment: style_ids, weights, code, condition_hash).

Each fact of the segments lives once: the user -> segment assignment in the
SQL store (``user_segments``), the segment list, centroids and default segment
in ``segmentation/``, each segment's render condition in ``conditions.json``.

Versions: a bundle without ``bundle.json`` is a format-1 bundle (written before
this module existed: ``style_space.npz`` beside ``whitening.npz``, the
assignment and the conditions also inside ``segmentation/``); it is read as
is.  A manifest of another kind, a broken file or a format newer than
:data:`BUNDLE_FORMAT_VERSION` is refused with :class:`BundleError` /
:class:`BundleVersionError` naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from recsys.bundle_types import (
    BundleError,
    BundleVersionError,
    Codes,
    StyleTable,
    Whitening,
)
from recsys.factors import FORMAT_VERSION, READABLE_VERSIONS, StyleFactors

if TYPE_CHECKING:  # the model pulls in PyTorch, the indices FAISS: loaded on demand
    from recsys.index import ItemIndex, StyleIndex
    from recsys.interactions import IdMap
    from recsys.model import StylePreferenceModel
    from recsys.segments import Segmentation

BUNDLE_KIND = "stylerec-run-bundle"
BUNDLE_FORMAT_VERSION = 2
"""Format this code writes and the newest it reads (1: bundles without a manifest)."""
SEGMENTS_FORMAT_VERSION = 2
"""``segmentation/segments.json``'s own version (1: ``Segmentation.save``, legacy)."""

MANIFEST = "bundle.json"
EVENTS = "events.parquet"
ITEMS_RAW = "items_raw.parquet"
STYLES_RAW = "styles_raw.parquet"
ITEMS = "items.parquet"
STYLES = "styles.parquet"
TOP_STYLES = "top_styles.parquet"
CODES = "codes.npz"
WHITENING = "whitening.npz"
MODEL = "model"  # model.npz + model.json
USER_MAP = "user_map.json"
ITEM_MAP = "item_map.json"
STYLE_EMBEDDINGS = "style_embeddings.npz"
STYLE_INDEX = "style_index"
ITEM_INDEX = "item_index"
SEGMENTATION = "segmentation"
CONDITIONS = "conditions.json"
#: Condition keys of the merchandising controls (pipelines.controls): the segment's own blend
#: (``base``) when a pin changed the rendered one, the pin, displaced styles, category variants.
CONTROL_KEYS = ("base", "pinned", "displaced", "category_variants")
LEGACY_STYLE_SPACE = "style_space.npz"  # format 1 only: the same whitening, a second time

TABLES: tuple[str, ...] = (EVENTS, ITEMS_RAW, STYLES_RAW, ITEMS, STYLES, TOP_STYLES)
MODEL_FILES: tuple[str, ...] = (MODEL + ".npz", MODEL + ".json", USER_MAP, ITEM_MAP)

REQUIRED_FILES: tuple[str, ...] = (
    MODEL + ".npz", MODEL + ".json", USER_MAP, ITEM_MAP, STYLE_EMBEDDINGS, CONDITIONS, ITEMS,
)
"""Files the service cannot answer without (without ``codes.npz`` cold catalogue items
get the prior; without ``segmentation/`` the largest segment is the default)."""

MODEL_FORMAT_VERSION = FORMAT_VERSION
"""``format_version`` of ``model.json`` that the bundle writes (:data:`recsys.factors.FORMAT_VERSION`);
:meth:`RunBundle.read_factors` also reads the older versions in
:data:`recsys.factors.READABLE_VERSIONS` and refuses others with :class:`BundleVersionError`."""


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """A temp path beside ``path``, renamed over it on success (a crash keeps the old file)."""
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(path: Path, payload: Any) -> None:
    with _atomic(path) as tmp:
        tmp.write_text(json.dumps(payload), encoding="utf-8")


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    with _atomic(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


class RunBundle:
    """One run's folder: typed writers and readers for each of its files.

    ``RunBundle.create(folder)`` for a run being written (the nightly stages),
    ``RunBundle.open(folder)`` for one being read (serving, reports, the next
    night).  Readers raise ``FileNotFoundError`` for a missing file and
    :class:`BundleError` for a file that is there but unreadable.
    """

    def __init__(self, root: str | Path, format_version: int = BUNDLE_FORMAT_VERSION) -> None:
        self.root = Path(root)
        self.format_version = format_version

    # ------------------------------------------------------------ open / manifest
    @classmethod
    def create(cls, root: str | Path) -> RunBundle:
        """The bundle at ``root`` for writing (folder and manifest made when absent).

        An existing folder is checked like :meth:`open` (a rerun of a stage
        writes into its own run); a format-1 folder is written on as format 2.
        """
        path = Path(root)
        path.mkdir(parents=True, exist_ok=True)
        bundle = cls.open(path)
        if not (path / MANIFEST).is_file():
            bundle.format_version = BUNDLE_FORMAT_VERSION
            bundle._write_manifest([n for n in _known_names() if (path / n).exists()])
        return bundle

    @classmethod
    def open(cls, root: str | Path) -> RunBundle:
        """The bundle at ``root`` for reading; refuses a foreign, corrupt or too new one."""
        path = Path(root)
        if not path.is_dir():
            raise FileNotFoundError(f"run bundle directory not found: {path}")
        manifest = path / MANIFEST
        if not manifest.is_file():
            return cls(path, format_version=1)
        try:
            meta = json.loads(manifest.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{manifest}: corrupt run-bundle manifest ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("kind") != BUNDLE_KIND:
            kind = meta.get("kind") if isinstance(meta, dict) else type(meta).__name__
            raise BundleError(f"{manifest}: not a stylerec run bundle (kind {kind!r})")
        version = meta.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise BundleError(f"{manifest}: invalid format_version {version!r}")
        if version > BUNDLE_FORMAT_VERSION:
            raise BundleVersionError(
                f"{manifest}: run bundle format {version} was written by a newer stylerec; "
                f"this version reads formats 1-{BUNDLE_FORMAT_VERSION}"
            )
        return cls(path, format_version=version)

    def manifest(self) -> dict[str, Any]:
        """The manifest's content (a synthesised one for a format-1 bundle)."""
        path = self.root / MANIFEST
        if not path.is_file():
            files = [n for n in _known_names() if (self.root / n).exists()]
            return {"kind": BUNDLE_KIND, "format_version": self.format_version, "files": files}
        return json.loads(path.read_text(encoding="utf-8"))

    def _write_manifest(self, files: Sequence[str]) -> None:
        _write_json(self.root / MANIFEST, {
            "kind": BUNDLE_KIND, "format_version": self.format_version,
            "files": sorted(set(files)),
        })

    def _wrote(self, *names: str) -> None:
        """Record ``names`` in the manifest (each writer calls it after its file is in place)."""
        if self.format_version < 2:
            return  # a format-1 bundle opened for reading has no manifest to keep
        files = self.manifest().get("files", [])
        if not set(names) <= set(files):
            self._write_manifest([*files, *names])

    def path(self, name: str) -> Path:
        """Where file ``name`` (one of this module's constants) lives."""
        return self.root / name

    def has(self, name: str) -> bool:
        return (self.root / name).exists()

    def missing(self, names: Sequence[str] = REQUIRED_FILES) -> list[str]:
        return [n for n in names if not self.has(n)]

    def check_servable(self) -> RunBundle:
        """``self`` when every file serving needs is there; ``FileNotFoundError`` naming the rest."""
        missing = self.missing(REQUIRED_FILES)
        if missing:
            raise FileNotFoundError(f"run bundle {self.root}: missing {', '.join(missing)}")
        return self

    def copy_from(self, other: RunBundle, names: Sequence[str]) -> bool:
        """Copy files (or folders) ``names`` of another run into this one; False if one is missing.

        A quiet night reuses yesterday's output this way instead of recomputing it.
        """
        if other.missing(names):
            return False
        for name in names:
            src, dest = other.path(name), self.path(name)
            if src.is_dir():
                shutil.copytree(src, dest, dirs_exist_ok=True)
            else:
                shutil.copy2(src, dest)
        self._wrote(*names)
        return True

    # ------------------------------------------------------------ tables
    def write_table(self, name: str, table: pd.DataFrame) -> None:
        """Write one of the parquet :data:`TABLES`."""
        _check_table(name)
        if name in (ITEMS, STYLES):
            id_col = "item_id" if name == ITEMS else "style_id"
            for col in (id_col, "image_uri"):
                if col not in table.columns:
                    raise ValueError(f"{name}: column {col!r} missing")
            table = table.assign(**{id_col: table[id_col].astype(str)})
        with _atomic(self.path(name)) as tmp:
            table.to_parquet(tmp, index=False)
        self._wrote(name)

    def read_table(self, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Read one of the parquet :data:`TABLES` (``items.parquet``: ids as ``str``)."""
        _check_table(name)
        path = self.path(name)
        if not path.is_file():
            raise FileNotFoundError(f"run bundle {self.root}: missing {name}")
        try:
            df = pd.read_parquet(path, columns=None if columns is None else list(columns))
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            raise BundleError(f"{path}: unreadable parquet table ({exc})") from exc
        if name == ITEMS and columns is None:
            for col in ("item_id", "image_uri"):
                if col not in df.columns:
                    raise BundleError(f"{path}: column {col!r} missing")
            df["item_id"] = df["item_id"].astype(str)
        return df

    # ------------------------------------------------------------ codes and whitening
    def write_codes(self, item_ids: Sequence[Any], item_codes: Any,
                    style_ids: Sequence[Any] = (), style_codes: Any = None) -> None:
        """Write ``codes.npz`` (raw codes; ids as unicode arrays)."""
        items = np.asarray(item_codes, np.float32)
        styles = (np.zeros((0, items.shape[1] if items.ndim == 2 else 0), np.float32)
                  if style_codes is None else np.asarray(style_codes, np.float32))
        for what, ids, arr in (("item", item_ids, items), ("style", style_ids, styles)):
            if arr.ndim != 2 or arr.shape[0] != len(ids):
                raise ValueError(f"{what} codes of shape {arr.shape} for {len(ids)} ids")
        _write_npz(self.path(CODES),
                   item_ids=np.asarray([str(i) for i in item_ids], dtype=str), item_codes=items,
                   style_ids=np.asarray([str(s) for s in style_ids], dtype=str),
                   style_codes=styles)
        self._wrote(CODES)

    def read_codes(self) -> Codes:
        """``codes.npz``; ``FileNotFoundError`` when the run has none."""
        z = self._npz(CODES, ("item_ids", "item_codes", "style_ids", "style_codes"))
        return Codes([str(i) for i in z["item_ids"]], np.asarray(z["item_codes"], np.float32),
                     [str(s) for s in z["style_ids"]], np.asarray(z["style_codes"], np.float32))

    def write_whitening(self, mean: Any, matrix: Any) -> None:
        """Write ``whitening.npz`` (dtypes kept: the fit's float64 whitens as it was fitted)."""
        mean, matrix = np.asarray(mean), np.asarray(matrix)
        if matrix.shape != (mean.shape[0], mean.shape[0]):
            raise ValueError(f"whitening: matrix {matrix.shape} does not fit mean {mean.shape}")
        _write_npz(self.path(WHITENING), mean=mean, matrix=matrix)
        self._wrote(WHITENING)

    def read_whitening(self) -> Whitening | None:
        """``whitening.npz``, or ``None`` when the run has none."""
        if not self.has(WHITENING):
            return None
        z = self._npz(WHITENING, ("mean", "matrix"))
        return Whitening(np.asarray(z["mean"]), np.asarray(z["matrix"]))

    # ------------------------------------------------------------ model and id maps
    def write_model(self, model: StylePreferenceModel, user_ids: Sequence[Any],
                    item_ids: Sequence[Any]) -> None:
        """Write the model (its own ``save``: model.npz + model.json) and both id maps."""
        model.save(self.path(MODEL))
        self.write_ids("user", user_ids)
        self.write_ids("item", item_ids)
        self._wrote(MODEL + ".npz", MODEL + ".json")

    def write_factors(self, factors: StyleFactors, user_ids: Sequence[Any],
                      item_ids: Sequence[Any]) -> None:
        """Write bare factors (no trainer state: they serve but cannot fold in histories)
        and both id maps; the files are the ones :meth:`write_model` writes."""
        if len(user_ids) != factors.n_users or len(item_ids) != factors.n_items:
            raise ValueError("id lists and factor rows differ in length")
        factors.save(self.path(MODEL))
        self.write_ids("user", user_ids)
        self.write_ids("item", item_ids)
        self._wrote(MODEL + ".npz", MODEL + ".json")

    def load_model(self) -> StylePreferenceModel:
        """The full model (imports PyTorch; serving reads :meth:`read_factors` instead)."""
        from recsys.model import StylePreferenceModel

        self._need(MODEL + ".npz", MODEL + ".json")
        return StylePreferenceModel.load(self.path(MODEL))

    def read_factors(self) -> StyleFactors:
        """The run's :class:`~recsys.factors.StyleFactors` (numpy only, no pickle), with the
        run's whitening attached so that raw image codes project as in training."""
        self._need(MODEL + ".json", MODEL + ".npz")
        meta = self._json(MODEL + ".json")
        got = meta.get("format_version") if isinstance(meta, dict) else None
        if got not in READABLE_VERSIONS:
            raise BundleVersionError(
                f"{self.path(MODEL + '.json')}: model format_version {got!r}; this code reads "
                f"{list(READABLE_VERSIONS)}"
            )
        try:
            factors = StyleFactors.load(self.path(MODEL))
        except (KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise BundleError(f"{self.path(MODEL + '.npz')}: {exc}") from exc
        wh = self.read_whitening()
        return factors if wh is None else factors.with_whitening(wh.mean, wh.matrix)

    def read_model_arrays(self) -> StyleFactors:
        """Deprecated name of :meth:`read_factors` (its result has the old fields)."""
        warnings.warn("RunBundle.read_model_arrays is deprecated; use read_factors",
                      DeprecationWarning, stacklevel=2)
        return self.read_factors()

    def write_ids(self, which: Literal["user", "item"], ids: Sequence[Any]) -> None:
        """Write ``user_map.json``/``item_map.json`` (``IdMap.save``'s format)."""
        name = _map_name(which)
        _write_json(self.path(name), {"ids": [str(i) for i in ids]})
        self._wrote(name)

    def read_ids(self, which: Literal["user", "item"]) -> list[str]:
        """The id list of ``user_map.json``/``item_map.json`` without building an ``IdMap``.

        The service builds one ``id -> row`` dict itself; an ``IdMap`` would build
        a second one, which for a million users costs ~100 MB at load.
        """
        name = _map_name(which)
        payload = self._json(name)
        ids = payload.get("ids") if isinstance(payload, dict) else None
        if not isinstance(ids, list):
            raise BundleError(f"{self.path(name)}: not an id map (no 'ids' list)")
        return [str(i) for i in ids]

    def read_id_map(self, which: Literal["user", "item"]) -> IdMap:
        """``user_map.json``/``item_map.json`` as an :class:`~recsys.interactions.IdMap`."""
        from recsys.interactions import IdMap

        ids = self.read_ids(which)
        if len(set(ids)) != len(ids):
            raise BundleError(f"{self.path(_map_name(which))}: ids are not unique")
        return IdMap(ids)

    # ------------------------------------------------------------ styles and indices
    def write_style_embeddings(self, style_ids: Sequence[Any], embeddings: Any) -> None:
        """Write ``style_embeddings.npz``."""
        _write_npz(self.path(STYLE_EMBEDDINGS),
                   style_ids=np.asarray([str(s) for s in style_ids], dtype=str),
                   embeddings=np.asarray(embeddings, dtype=np.float32))
        self._wrote(STYLE_EMBEDDINGS)

    def read_style_embeddings(self) -> StyleTable:
        z = self._npz(STYLE_EMBEDDINGS, ("style_ids", "embeddings"))
        return StyleTable([str(s) for s in z["style_ids"]],
                          np.asarray(z["embeddings"], np.float32))

    def write_style_index(self, index: StyleIndex) -> None:
        index.save(self.path(STYLE_INDEX))
        self._wrote(STYLE_INDEX)

    def read_style_index(self) -> StyleIndex:
        from recsys.index import StyleIndex

        self._need(STYLE_INDEX)
        return StyleIndex.load(self.path(STYLE_INDEX))

    def write_item_index(self, index: ItemIndex) -> None:
        index.save(self.path(ITEM_INDEX))
        self._wrote(ITEM_INDEX)

    def read_item_index(self) -> ItemIndex:
        from recsys.index import ItemIndex

        self._need(ITEM_INDEX)
        return ItemIndex.load(self.path(ITEM_INDEX))

    # ------------------------------------------------------------ segments
    def write_segments(self, seg: Segmentation, conditions: Sequence[dict[str, Any]]) -> None:
        """Write ``segmentation/`` (ids, default, next number, centroids) and ``conditions.json``.

        The assignment is not written here: it is the SQL store's
        (``user_segments``).  ``conditions`` must name the segmentation's
        segments with its style blends; each gets its render ``code`` and
        ``condition_hash`` beside them.
        """
        ids = [str(s) for s in seg.segment_ids]
        by_id = {str(c["segment_id"]): c for c in conditions}
        if sorted(by_id) != sorted(ids) or len(by_id) != len(conditions):
            raise ValueError(f"conditions name segments {sorted(by_id)}, the segmentation {ids}")
        for sid in ids:
            mine = seg.conditions[sid]
            row = by_id[sid].get("base") or by_id[sid]  # a pinned condition keeps its own blend
            if (tuple(str(s) for s in row["style_ids"]) != tuple(mine.style_ids)
                    or not np.allclose(row["weights"], mine.weights)):
                raise ValueError(f"segment {sid}: condition differs from the segmentation's")
        folder = self.path(SEGMENTATION)
        folder.mkdir(parents=True, exist_ok=True)
        _write_npz(folder / "segments.npz", centroids=np.asarray(seg.centroids, np.float32))
        _write_json(folder / "segments.json", {
            "format_version": SEGMENTS_FORMAT_VERSION, "segment_ids": ids,
            "default_segment": str(seg.default_segment), "next_index": int(seg.next_index),
        })
        self.write_conditions([by_id[s] for s in ids])
        self._wrote(SEGMENTATION)

    def write_conditions(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write ``conditions.json``: segment_id, style_ids, weights, [code, condition_hash]."""
        out = []
        for n, row in enumerate(rows):
            for key in ("segment_id", "style_ids", "weights"):
                if key not in row:
                    raise ValueError(f"condition {n} lacks {key!r}")
            r = {"segment_id": str(row["segment_id"]),
                 "style_ids": [str(s) for s in row["style_ids"]],
                 "weights": [float(w) for w in row["weights"]]}
            if row.get("code") is not None:
                r["code"] = [float(x) for x in np.asarray(row["code"]).ravel()]
            if row.get("condition_hash") is not None:
                r["condition_hash"] = str(row["condition_hash"])
            for key in CONTROL_KEYS:  # what the merchandising controls changed (JSON values)
                if row.get(key) is not None:
                    r[key] = row[key]
            out.append(r)
        _write_json(self.path(CONDITIONS), out)
        self._wrote(CONDITIONS)

    def read_conditions(self) -> list[dict[str, Any]]:
        """``conditions.json``; a malformed file is a :class:`BundleError` naming it."""
        rows = self._json(CONDITIONS)
        path = self.path(CONDITIONS)
        if not isinstance(rows, list):
            raise BundleError(f"{path}: expected a JSON list of segment conditions")
        for n, row in enumerate(rows):
            if not isinstance(row, dict):
                raise BundleError(f"{path}: entry {n} is not an object")
            for key in ("segment_id", "style_ids", "weights"):
                if key not in row:
                    raise BundleError(f"{path}: entry {n} lacks {key!r}")
        return rows

    def read_default_segment(self) -> str | None:
        """The segmentation's default segment (for unknown shoppers); None without one."""
        meta = self._segments_meta()
        return None if meta is None else str(meta["default_segment"])

    def read_segmentation(self, assignment: pd.DataFrame | None = None) -> Segmentation | None:
        """The run's :class:`~recsys.segments.Segmentation`, or None when it has none.

        ``assignment`` (``user_id``, ``segment_id``: the store's ``user_segments``
        of this run) fills its assignment; without it the assignment is empty.
        Conditions come from ``conditions.json`` (format 1 also kept them in
        ``segments.json``; the two were written from the same blend).
        """
        from recsys.segments import Segmentation, SegmentCondition

        meta = self._segments_meta()
        if meta is None:
            return None
        folder = SEGMENTATION + "/segments.npz"
        centroids = np.asarray(self._npz(folder, ("centroids",))["centroids"], np.float32)
        sids = [str(s) for s in meta["segment_ids"]]
        if centroids.shape[0] != len(sids):
            raise BundleError(f"{self.path(folder)}: {centroids.shape[0]} centroids for "
                              f"{len(sids)} segments")
        if self.has(CONDITIONS):
            conds = {str(c["segment_id"]): c for c in self.read_conditions()}
        else:
            conds = {str(k): v for k, v in (meta.get("conditions") or {}).items()}
        missing = [s for s in sids if s not in conds]
        if missing:
            raise BundleError(f"{self.root}: no condition for segments {missing}")
        if assignment is None:
            assignment = pd.DataFrame({"user_id": [], "segment_id": []})
        frame = pd.DataFrame({
            "user_id": assignment["user_id"].astype(str).to_numpy(dtype=object),
            "segment_id": pd.Categorical(assignment["segment_id"].astype(str), categories=sids),
        })
        return Segmentation(
            segment_ids=sids, centroids=centroids,
            conditions={s: SegmentCondition.from_dict(conds[s].get("base") or conds[s])
                        for s in sids},
            assignment=frame, default_segment=str(meta["default_segment"]),
            next_index=int(meta["next_index"]),
        )

    def _segments_meta(self) -> dict[str, Any] | None:
        name = SEGMENTATION + "/segments.json"
        if not self.has(name):
            return None
        meta = self._json(name)
        version = meta.get("format_version") if isinstance(meta, dict) else None
        if version not in (1, SEGMENTS_FORMAT_VERSION):
            raise BundleVersionError(f"{self.path(name)}: segments format {version!r}; this "
                                     f"version reads 1-{SEGMENTS_FORMAT_VERSION}")
        for key in ("segment_ids", "default_segment", "next_index"):
            if key not in meta:
                raise BundleError(f"{self.path(name)}: {key!r} missing")
        return meta

    # ------------------------------------------------------------ low-level readers
    def _need(self, *names: str) -> None:
        missing = self.missing(names)
        if missing:
            raise FileNotFoundError(f"run bundle {self.root}: missing {', '.join(missing)}")

    def _json(self, name: str) -> Any:
        self._need(name)
        path = self.path(name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{path}: corrupt JSON ({exc})") from exc

    def _npz(self, name: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """All arrays of an npz file, loaded (never pickle); names the file when broken."""
        self._need(name)
        path = self.path(name)
        try:
            with np.load(path, allow_pickle=False) as z:
                out = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise BundleError(f"{path}: corrupt npz file ({exc})") from exc
        missing = [k for k in keys if k not in out]
        if missing:
            raise BundleError(f"{path}: arrays {missing} missing (not a {name} of a run bundle)")
        return out


def _known_names() -> tuple[str, ...]:
    return (*TABLES, CODES, WHITENING, *MODEL_FILES, STYLE_EMBEDDINGS, STYLE_INDEX,
            ITEM_INDEX, SEGMENTATION, CONDITIONS)


def _check_table(name: str) -> None:
    if name not in TABLES:
        raise ValueError(f"{name!r} is not a run-bundle table ({', '.join(TABLES)})")


def _map_name(which: str) -> str:
    if which not in ("user", "item"):
        raise ValueError(f"id map {which!r}: 'user' or 'item'")
    return USER_MAP if which == "user" else ITEM_MAP


__all__ = [
    "BUNDLE_FORMAT_VERSION", "BundleError", "BundleVersionError", "Codes",
    "RunBundle", "StyleTable", "Whitening",
]


def __getattr__(name: str) -> Any:
    if name == "ModelArrays":  # the old numpy reader's result; StyleFactors has its fields
        warnings.warn("recsys.run_bundle.ModelArrays is recsys.factors.StyleFactors now",
                      DeprecationWarning, stacklevel=2)
        return StyleFactors
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
