"""Byte-level hygiene for CSV files: drop (and report) the lines a CSV parser must not see.

Why a filter in front of the parser: pyarrow's CSV reader refuses a whole
file for one line of bytes that are not UTF-8, and happily reads NUL bytes
into ids (which PostgreSQL then refuses, failing the night).  A log written by
many systems has such lines now and then; they are *row* problems, so only
those lines go to quarantine and the rest of the file is read as usual.

:class:`CleanLines` is a read-only binary file that yields the file's bytes
minus every physical line that holds a NUL byte, is not valid UTF-8, or is
longer than :data:`MAX_LINE_BYTES` (a 30 MB "id" is refused here without
ever becoming a Python string).  Clean files pay one NUL scan and one UTF-8
decode per megabyte chunk, both in C; only a chunk with a problem is split
into lines.  A quoted cell that spans lines is cut by a dropped line around
it; the pieces then fail the parser's field count and are quarantined as
``malformed_row`` too, so nothing is lost without a trace.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np

#: Longest CSV line accepted (bytes).  Event and catalogue lines are a few hundred
#: bytes; an id may have at most 255 characters (data.ids), i.e. at most ~1 kB.
MAX_LINE_BYTES = 1 << 20
#: Bytes read from the file at a time.
CHUNK_BYTES = 1 << 20
#: How much of a dropped line its quarantine record keeps.
SHOWN_BYTES = 200

BAD_BYTES = "bad_bytes"
LINE_TOO_LONG = "line_too_long"


@dataclass(frozen=True)
class BadLine:
    """A dropped line: its 1-based physical line number, the reason, a detail, its start."""

    line_no: int
    reason: str
    detail: str
    text: str


def _shown(raw: bytes) -> str:
    text = raw[:SHOWN_BYTES].decode("utf-8", errors="replace").replace("\x00", "\\x00")
    return text.rstrip("\r\n")


def line_problem(line: bytes, max_line_bytes: int = MAX_LINE_BYTES) -> tuple[str, str] | None:
    """``(reason, detail)`` when one physical line must not reach the parser, else None."""
    if len(line) > max_line_bytes:
        return LINE_TOO_LONG, f"line of {len(line)} bytes (limit {max_line_bytes})"
    nul = line.find(b"\x00")
    if nul >= 0:
        return BAD_BYTES, f"NUL byte at byte {nul} of the line"
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BAD_BYTES, f"not UTF-8 ({exc.reason} at byte {exc.start} of the line)"
    return None


def _longest_line(block: bytes) -> int:
    """Length of the longest line of ``block`` (newlines included), in numpy."""
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
    if ends.size == 0:
        return len(block)
    bounds = np.concatenate(([-1], ends, [len(block) - 1]))
    return int(np.diff(bounds).max())


class CleanLines(io.RawIOBase):
    """The bytes of ``path`` without its bad lines; ``bad`` lists what was dropped so far."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_line_bytes: int = MAX_LINE_BYTES,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        super().__init__()
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.max_line_bytes = int(max_line_bytes)
        self.chunk_bytes = int(chunk_bytes)
        self.bad: list[BadLine] = []
        self._out = bytearray()
        self._carry = b""
        self._line = 1  # physical line number of the first line in _carry
        self._skipping = False  # inside an over-long line: drop until its newline
        self._eof = False

    # io.RawIOBase -------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        # Fill the whole request: pyarrow's streaming reader takes a short read for the
        # end of a block, and 1 MB blocks made ten times more (and slower) batches.
        while len(self._out) < len(buffer) and not self._eof:
            self._fill()
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        del self._out[:n]
        return n

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()

    # filtering ----------------------------------------------------------------------
    def _fill(self) -> None:
        chunk = self._fh.read(self.chunk_bytes)
        if not chunk:
            self._eof = True
            if self._carry and not self._skipping:
                self._emit_block(self._carry)
            self._carry = b""
            return
        data = self._carry + chunk
        if self._skipping:
            end = data.find(b"\n")
            if end < 0:
                self._carry = b""
                return
            data = data[end + 1 :]
            self._skipping = False
            self._line += 1
        last = data.rfind(b"\n")
        if last < 0:
            if len(data) > self.max_line_bytes:
                self._drop_long(data)
            else:
                self._carry = data
            return
        self._carry = data[last + 1 :]
        self._emit_block(data[: last + 1])
        if len(self._carry) > self.max_line_bytes:
            self._drop_long(self._carry)

    def _drop_long(self, start: bytes) -> None:
        self.bad.append(BadLine(self._line, LINE_TOO_LONG,
                                f"line longer than {self.max_line_bytes} bytes", _shown(start)))
        self._carry = b""
        self._skipping = True

    def _emit_block(self, block: bytes) -> None:
        """Hand on a run of whole lines, dropping the bad ones (fast path: none are)."""
        n_lines = block.count(b"\n")
        if b"\x00" not in block and (
            len(block) <= self.max_line_bytes or _longest_line(block) <= self.max_line_bytes
        ):
            try:
                block.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                self._out += block
                self._line += n_lines
                return
        for line in block.splitlines(keepends=True):
            problem = line_problem(line, self.max_line_bytes)
            if problem is None:
                self._out += line
            else:
                self.bad.append(BadLine(self._line, problem[0], problem[1], _shown(line)))
            if line.endswith(b"\n"):
                self._line += 1

    def take_bad(self) -> list[BadLine]:
        """The bad lines found since the last call (for per-batch quarantine)."""
        out, self.bad = self.bad, []
        return out
