"""The Content-Disposition header a download is sent with, in one place for every route that sends
stored bytes (the content route, local signed downloads, S3's signed downloads).

A name that needs escaping gets both of RFC 6266's parameters: `filename*` (RFC 5987, the exact
name, which browsers and the Python client read) and before it a plain `filename` of the name's
ASCII letters, which tools that know no `filename*` use: curl's `-OJ` saved such a download as
`content` (the last part of its URL). A quote or line break in a name never reaches the header as
itself, so it cannot end the parameter or the header.
"""

from __future__ import annotations

import os
import re
import unicodedata
from urllib.parse import quote

_NOT_PLAIN = re.compile(r"[^A-Za-z0-9 ._()+,=@-]+")  # kept in the plain fallback: no quote, slash or control
_LETTER = re.compile(r"[A-Za-z0-9]")


def disposition(name: str, kind: str = "attachment") -> str:
    """`kind; filename="name"` for a plain name, else the fallback and the exact name."""
    escaped = quote(name, safe="")
    if escaped == name:
        return f'{kind}; filename="{name}"'
    return f"{kind}; filename=\"{plain_name(name)}\"; filename*=utf-8''{escaped}"


def plain_name(name: str) -> str:
    """`name` in ASCII letters a quoted parameter holds as they are: accents dropped (`résumé` is
    `resume`), anything else one `_` a run; `download` for a name with no letter or digit left
    before its extension (`日本.json` is `download.json`)."""
    stem, extension = os.path.splitext(name)
    stem, extension = _plain(stem), _plain(extension).rstrip(".")  # `.日本` leaves no extension
    return f"{stem if _LETTER.search(stem) else 'download'}{extension}"


def _plain(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_PLAIN.sub("_", ascii_text).strip(" _")
