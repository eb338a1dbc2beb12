"""The id policy: what an external id (user, item, style, segment, category) may be.

One rule set, enforced where ids enter (:mod:`data.validation`) and matched by
the store (its id columns are ``String(MAX_ID_LENGTH)``), so that an id that
validation accepts can never fail a write on PostgreSQL when SQLite would have
taken it (SQLite ignores column lengths and stores NUL; PostgreSQL raises
``StringDataRightTruncation`` and ``CharacterNotInRepertoire``).

* at most :data:`MAX_ID_LENGTH` characters (after normalisation; PostgreSQL's
  ``varchar(n)`` counts characters, not bytes);
* no control characters: Unicode category ``Cc`` (NUL, tab, CR, LF, DEL and
  the C1 range) and lone surrogates (``Cs``, not encodable as UTF-8);
* Unicode NFC: ``"é"`` typed as one code point and as ``e`` + combining accent
  is the same shopper, so both are stored as the composed form.

The checks are vectorised in pyarrow and run once per *distinct* id (ids
repeat heavily in event logs), so they cost little next to parsing.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: Longest id in characters: the store's id columns are ``String(MAX_ID_LENGTH)``.
MAX_ID_LENGTH = 255

#: Control characters (C0, DEL, C1) and surrogates, as an RE2 class for pyarrow.
_CONTROL_RE = r"[\x{0}-\x{1f}\x{7f}-\x{9f}]"


def _as_arrow(ids: pd.Series) -> pa.Array:
    arr = pa.array(ids.astype("string"), from_pandas=True, type=pa.string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def check_ids(ids: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Apply the id policy to a ``string`` Series of already-stripped ids (NA = no id).

    Returns ``(nfc_ids, too_long, control)``: the ids in NFC (NA where they
    break the policy) and two boolean numpy masks.  NA cells are neither.
    """
    n = len(ids)
    if n == 0:
        return ids, np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    encoded = pc.dictionary_encode(_as_arrow(ids))
    uniques = encoded.dictionary
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    # NFC only where it can change anything (ASCII is always NFC).
    ascii_ = pc.string_is_ascii(uniques).to_numpy(zero_copy_only=False)
    values = uniques.to_pylist()
    changed = False
    for i in np.flatnonzero(~ascii_):
        text = values[i]
        # Lone surrogates cannot reach here through pyarrow (it holds UTF-8 only).
        nfc = unicodedata.normalize("NFC", text)
        if nfc != text:
            values[i] = nfc
            changed = True
    u_arr = pa.array(values, type=pa.string()) if changed else uniques
    u_long = pc.greater(pc.utf8_length(u_arr), MAX_ID_LENGTH).to_numpy(zero_copy_only=False)
    u_ctrl = pc.match_substring_regex(u_arr, _CONTROL_RE).to_numpy(zero_copy_only=False)
    has = codes >= 0
    take = np.maximum(codes, 0)
    too_long = has & u_long[take] if len(u_arr) else np.zeros(n, dtype=bool)
    control = has & u_ctrl[take] & ~too_long if len(u_arr) else np.zeros(n, dtype=bool)
    out = ids
    if changed:
        fixed = pd.Series(pd.array(u_arr.to_pylist(), dtype="string"))
        out = pd.Series(
            pd.array(np.where(has, fixed.to_numpy(dtype=object)[take], None).tolist(),
                     dtype="string"),
            index=ids.index,
        )
    bad = too_long | control
    if bad.any():
        out = out.mask(bad)
    return out.astype(ids.dtype if isinstance(ids.dtype, pd.StringDtype) else "string"), too_long, control


def id_problem(value: str) -> str | None:
    """Why one id breaks the policy (None when it does not): for the store's row checks."""
    if len(value) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters ({len(value)})"
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            return f"contains the control character U+{ord(ch):04X}"
    return None


def normalise_id(value: str) -> str:
    """One id in NFC (the store's form)."""
    return value if value.isascii() else unicodedata.normalize("NFC", value)
