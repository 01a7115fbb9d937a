"""Document metadata and text: PDFs with pypdf, plain text files as UTF-8.

An encrypted PDF is registered, not rejected: its existence and page count (when the empty user
password opens it) are useful, its text is not ours to read, so none is extracted.
"""

from __future__ import annotations

import logging

from pypdf import PdfReader
from pypdf.errors import DependencyError, PdfReadError

from mm_platform.media.blob import Buffer, as_stream
from mm_platform.media.budget import MAX_TEXT_CHARS

__all__ = ["probe_pdf", "probe_text"]

log = logging.getLogger(__name__)


def probe_pdf(data: Buffer, name: str) -> dict[str, object]:
    """``page_count, title, author, encrypted, text, text_truncated`` for a PDF; raises pypdf errors."""
    reader = PdfReader(as_stream(data))
    encrypted = reader.is_encrypted
    readable = not encrypted
    if encrypted:
        try:
            # Many "encrypted" PDFs only restrict printing/copying and open with an empty user password.
            readable = bool(reader.decrypt(""))
        except (DependencyError, NotImplementedError, PdfReadError) as exc:
            log.info("cannot try the empty password on %s: %s", name, exc)
    page_count = len(reader.pages) if readable else None
    title = author = None
    if readable:
        meta = reader.metadata
        if meta is not None:
            title, author = _clean(meta.title), _clean(meta.author)
    text = None if encrypted else _extract_text(reader)
    return {
        "page_count": page_count,
        "title": title,
        "author": author,
        "encrypted": encrypted,
        "text": None if text is None else text[:MAX_TEXT_CHARS],
        "text_truncated": text is not None and len(text) > MAX_TEXT_CHARS,
    }


def probe_text(data: Buffer, name: str) -> dict[str, object]:
    """``text, encoding, text_truncated`` for a plain-text file (UTF-8, optional BOM)."""
    encoding = "utf-8-sig" if data[:3] == b"\xef\xbb\xbf" else "utf-8"
    text = bytes(data).decode(encoding)  # strict: sniff said UTF-8, so an error here means the tail is not
    return {
        "text": text[:MAX_TEXT_CHARS],
        "encoding": "utf-8",
        "text_truncated": len(text) > MAX_TEXT_CHARS,
    }


def _extract_text(reader: PdfReader) -> str:
    parts: list[str] = []
    size = 0
    for page in reader.pages:
        try:
            part = page.extract_text() or ""
        except Exception as exc:  # one bad content stream loses that page's text, not the document
            log.warning("text extraction failed on a page: %s", exc)
            part = ""
        parts.append(part)
        size += len(part)
        if size > MAX_TEXT_CHARS:
            break
    return "\n\n".join(parts)


def _clean(value: str | None) -> str | None:
    text = (value or "").strip()
    return text or None
