"""Object names that are not valid UTF-8, as keys every table can hold.

POSIX file names are bytes. Python hands undecodable bytes over as lone surrogates (``surrogateescape``),
which no UTF-8 column, JSON document or Parquet file accepts, so one such name used to fail a whole batch.
A key is the name itself when it is valid UTF-8 (unchanged, so existing lakes keep their keys); otherwise
each byte that is not part of valid UTF-8 is written ``%XX`` and a literal ``%`` as ``%25``. The exact raw
bytes are always recoverable from the object's URI (a percent-encoding of every byte), and from the key with
:func:`name_bytes`.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote_from_bytes, unquote_to_bytes, urlparse

__all__ = [
    "has_undecodable_bytes",
    "is_encoded_key",
    "key_for_name",
    "keys_for_names",
    "name_bytes",
    "path_of_file_uri",
    "uri_quoted_names",
]

_SURROGATE = re.compile("[\udc80-\udcff%]")
_HAS_SURROGATE = re.compile("[\udc80-\udcff]")
_URI_UNSAFE = re.compile(r"[^A-Za-z0-9_.~/-]")  # what ``quote_from_bytes`` leaves alone, "/" included


def has_undecodable_bytes(text: str) -> bool:
    """Whether ``text`` (a name or names as ``os`` gives them) holds bytes that are not valid UTF-8."""
    return _HAS_SURROGATE.search(text) is not None


def key_for_name(name: str) -> str:
    """``name`` (as ``os.scandir`` gives it) as a valid UTF-8 key; unchanged when it already is one."""
    if not _HAS_SURROGATE.search(name):
        return name
    return _SURROGATE.sub(lambda m: "%25" if m.group() == "%" else f"%{ord(m.group()) - 0xDC00:02X}", name)


def keys_for_names(raw_prefix: str, names: list[str]) -> list[str]:
    """``key_for_name(raw_prefix + name)`` for each name of one folder: one check for the whole folder in the
    usual case that nothing needs encoding (a listing calls this per folder, not per file)."""
    if not _HAS_SURROGATE.search(raw_prefix) and not _HAS_SURROGATE.search("/".join(names)):
        return [raw_prefix + name for name in names]
    return [key_for_name(raw_prefix + name) for name in names]


def uri_quoted_names(names: list[str]) -> list[str]:
    """Each name's exact bytes percent-encoded as a URI path segment (``quote_from_bytes``), one check for the
    whole folder when no name needs quoting."""
    if not _URI_UNSAFE.search("/".join(names)):
        return names
    return [quote_from_bytes(os.fsencode(name)) for name in names]


def is_encoded_key(key: str) -> bool:
    """Whether ``key`` came from a name with bytes that are not UTF-8 (its unquoted bytes are not UTF-8)."""
    if "%" not in key:
        return False
    try:
        unquote_to_bytes(key).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def name_bytes(key: str) -> bytes:
    """The raw name bytes a key stands for (the inverse of :func:`key_for_name`)."""
    return unquote_to_bytes(key) if is_encoded_key(key) else key.encode("utf-8")


def path_of_file_uri(uri: str) -> str:
    """The exact local path of a ``file://`` URI, undecodable bytes included (as ``os`` functions take it)."""
    return os.fsdecode(unquote_to_bytes(urlparse(uri).path))
