"""The described style library and its text search.

``data.styles.library``: the library file (today's ``styles.csv`` plus optional
description, strength, category rules, campaign dates, pins and ``enabled``),
validated line by line.  ``data.styles.search``: ranked text search over it
(Chinese and English, a shipped synonym lexicon, "more like this" by style code).
Neither imports anything heavy at module level beyond numpy, so the CLI's
``styles`` commands stay quick.
"""

from data.styles.library import (
    LIBRARY_COLUMNS,
    LibraryProblem,
    StyleEntry,
    StyleLibrary,
    StyleLibraryError,
    load_style_library,
)

__all__ = [
    "LIBRARY_COLUMNS",
    "LibraryProblem",
    "StyleEntry",
    "StyleLibrary",
    "StyleLibraryError",
    "load_style_library",
]
