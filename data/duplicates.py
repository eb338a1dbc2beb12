"""Duplicate rows across a whole night's logs in bounded memory: 64-bit row hashes, sorted runs.

A row equal to an earlier *valid* row after normalisation (all event columns)
is a ``duplicate``; detection spans every batch of a log (and, with a shared
:class:`DuplicateFilter`, every log of a night).  8 bytes per distinct row
(80 MB for 10M rows); two different rows colliding in 64 bits has odds of
about n^2 / 2^65 (~3e-6 for 10M rows): the price of bounded memory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.normalise import dictionary_encode


class DuplicateFilter:
    """Remembers 64-bit hashes of accepted rows across batches, in sorted ``uint64`` runs.

    A Python ``set`` of 10M ints costs ~600 MB; sorted numpy arrays cost 80 MB
    and answer membership with ``searchsorted``.  Each batch's new hashes become
    a sorted run, and runs of similar size are merged (as in an LSM tree): a
    single ever-growing array would be copied once per batch (quadratic), while
    this keeps at most ~log2(batches) runs and copies each hash ~log2 times.
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    def mark(self, hashes: np.ndarray) -> np.ndarray:
        """Return True for each hash seen before (earlier batch or earlier in this one); add the rest."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        dup = pd.Series(hashes).duplicated().to_numpy()
        if self._runs and len(hashes):
            # Sorted needles: numpy's binary search starts from the previous hit, so the
            # lookups walk each run once instead of jumping at random (~10x faster).
            order = np.argsort(hashes)
            needles = hashes[order]
            found = np.zeros(len(hashes), dtype=bool)
            for run in self._runs:
                pos = np.minimum(np.searchsorted(run, needles), len(run) - 1)
                found |= run[pos] == needles
            seen_before = np.empty(len(hashes), dtype=bool)
            seen_before[order] = found
            dup = dup | seen_before
        new = np.sort(hashes[~dup])
        if len(new):
            self._runs.append(new)
            while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
                last = self._runs.pop()
                prev = self._runs.pop()
                self._runs.append(np.insert(prev, np.searchsorted(prev, last), last))
        return dup



_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per row of a normalised frame, equal for equal rows in any batch.

    String columns are dictionary-encoded first so each distinct id is hashed
    once per batch rather than once per row (ids repeat heavily in event logs);
    the per-column hashes are then combined by hashing them as a row of uint64s.
    """
    cols: dict[str, np.ndarray] = {}
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pd.StringDtype):
            codes, uniques = dictionary_encode(col)
            if len(uniques) == 0:  # an all-missing column (e.g. no style ids in this log)
                cols[name] = np.full(len(codes), _NULL_HASH, dtype=np.uint64)
                continue
            hashed = pd.util.hash_array(uniques.to_numpy(dtype=object), categorize=False)
            cols[name] = np.where(codes >= 0, hashed[np.maximum(codes, 0)], _NULL_HASH)
        else:
            cols[name] = pd.util.hash_pandas_object(col, index=False).to_numpy(dtype=np.uint64)
    combined = pd.DataFrame(cols, index=pd.RangeIndex(len(frame)))
    return pd.util.hash_pandas_object(combined, index=False).to_numpy(dtype=np.uint64)
