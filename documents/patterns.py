"""Text the servers' `$regex` matches as written, for searches typed by clients."""

from __future__ import annotations

import re


def literal(text: str) -> str:
    """A pattern matching `text` exactly (a `.` or `(` in it is no pattern). re.escape leaves NUL as
    it is, which MongoDB refuses in a pattern (a client's search answered INTERNAL), so NUL is
    written as the escape both servers' engines (PCRE, Go's RE2) read as NUL."""
    return re.escape(text).replace("\x00", "\\x00")
