"""Reading pages the way a person does, for sentence-level assertions."""

from __future__ import annotations

import re
from html import unescape


def page_text(response) -> str:
    """The page's visible words with whitespace collapsed (tags, scripts and styles stripped)."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return (
        " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
        .replace(" ,", ",")
        .replace(" .", ".")
        .replace(" :", ":")
    )
