"""Parse an annotation file's bytes into numbered rows: CSV/TSV, JSON Lines, a JSON array, Parquet.

Column names are normalised (``"Customer ID"`` → ``customer_id``), two names that normalise alike are refused,
and a file may bring at most ``MAX_COLUMNS`` columns. A record that cannot be parsed or stored (wrong field
count, not JSON, nested deeper than ``MAX_DEPTH``, an integer beyond int64) becomes a ``malformed_row``
problem with its row and line; the rest of the file is still parsed.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mm_platform.annotations.model import FileRow, FileVersion, RowProblem
from mm_platform.errors import ConfigError

__all__ = [
    "MAX_COLUMNS",
    "MAX_DEPTH",
    "AnnotationFile",
    "normalise_column",
    "parse_csv",
    "parse_json_array",
    "parse_json_lines",
    "parse_parquet",
]


@dataclass(frozen=True)
class AnnotationFile:
    """A parsed annotation file: its version, its columns and its rows (and the records that did not parse)."""

    version: FileVersion
    columns: tuple[str, ...]
    """Normalised column names, in the order the file first names them."""
    original_names: Mapping[str, str]
    """Normalised name → the name in the file (``"Customer ID"`` → ``customer_id``)."""
    rows: tuple[FileRow, ...]
    malformed: tuple[RowProblem, ...]

    @property
    def row_count(self) -> int:
        """Every record of the file, parsed or not: what a report's counts must add up to."""
        return len(self.rows) + len(self.malformed)


def normalise_column(name: str) -> str:
    """A column name usable in ``--where`` and as a Delta column: lower case, ``[a-z0-9_]``."""
    clean = re.sub(r"[^0-9a-z_]+", "_", name.strip().lower()).strip("_")
    if not clean or clean[0].isdigit():
        clean = f"c_{clean}"
    return clean


class _Columns:
    """Normalised names for the file's columns, refusing two names that normalise alike."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.names: dict[str, str] = {}  # original -> normalised
        self.original: dict[str, str] = {}  # normalised -> original

    def add(self, original: str) -> str:
        if original in self.names:
            return self.names[original]
        name = normalise_column(original)
        if name in self.original:
            raise ConfigError(
                f"{self.uri}: columns {self.original[name]!r} and {original!r} both read as {name!r}",
                hint="rename one of them",
            )
        self.names[original] = name
        self.original[name] = original
        return name

    def file(self, version: FileVersion, rows: list[FileRow], malformed: list[RowProblem]) -> AnnotationFile:
        return AnnotationFile(version, tuple(self.original), dict(self.original), tuple(rows), tuple(malformed))


MAX_COLUMNS = 1024
"""Columns a file may bring (each becomes a column of ``annotations``): a label file has a handful; 100,000
would make every later read of the table slow."""
MAX_DEPTH = 32
"""Nesting a JSON value may have (a box is 2 deep); deeper records are rejected, never parsed recursively."""
_INT64 = 2**63 - 1


def _check_columns(uri: str, count: int) -> None:
    if count > MAX_COLUMNS:
        raise ConfigError(
            f"{uri}: {count:,} columns; an annotation file may have at most {MAX_COLUMNS:,}",
            hint="keep the key column and the annotation columns; drop or pivot the rest into a `value` column",
        )


def _value_problem(value: Any, depth: int = 0) -> str | None:
    """Why a parsed JSON value cannot be stored (too deep, an integer beyond int64), or None."""
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) > _INT64:
        return f"an integer of {len(str(abs(value)))} digits, beyond the 64-bit range"
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        if (problem := _value_problem(child, depth + 1)) is not None:
            return problem
    return None


def parse_csv(text: str, version: FileVersion, delimiter: str) -> AnnotationFile:
    columns = _Columns(version.uri)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[FileRow] = []
    malformed: list[RowProblem] = []
    end = 0
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if not record or (header is None and all(not cell.strip() for cell in record)):
                continue  # a blank line is no record
            if header is None:
                _check_columns(version.uri, len(record))
                header = [columns.add(cell) for cell in record]
                continue
            number = len(rows) + len(malformed) + 1
            raw = _csv_line(record, delimiter)
            if len(record) != len(header):
                malformed.append(
                    RowProblem(
                        number,
                        "malformed_row",
                        f"{len(record)} fields where the header has {len(header)}",
                        line=start,
                        raw=raw,
                    )
                )
                continue
            values = {name: (cell if cell != "" else None) for name, cell in zip(header, record, strict=True)}
            rows.append(FileRow(number, start, values, raw))
    except csv.Error as exc:
        raise ConfigError(f"{version.uri}: not readable as CSV near line {end + 1}: {exc}") from exc
    return columns.file(version, rows, malformed)


def _csv_line(record: list[str], delimiter: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(record)
    return out.getvalue()


def _json_records(lines: Iterator[tuple[int | None, str]], version: FileVersion) -> AnnotationFile:
    columns = _Columns(version.uri)
    rows: list[FileRow] = []
    malformed: list[RowProblem] = []
    for line, text in lines:
        number = len(rows) + len(malformed) + 1
        try:
            record = json.loads(text) if isinstance(text, str) else text
        except json.JSONDecodeError as exc:
            malformed.append(RowProblem(number, "malformed_row", f"not valid JSON: {exc.msg}", line=line, raw=text))
            continue
        except RecursionError:  # the C parser gives up past ~1,000 levels
            problem = f"not readable: nested deeper than {MAX_DEPTH} levels"
            malformed.append(RowProblem(number, "malformed_row", problem, line=line, raw=_clip(text)))
            continue
        except ValueError as exc:  # e.g. an integer of more than 4,300 digits
            problem = f"not readable: {exc}".split(";")[0]
            malformed.append(RowProblem(number, "malformed_row", problem, line=line, raw=_clip(text)))
            continue
        if (unstorable := _value_problem(record)) is not None:
            malformed.append(RowProblem(number, "malformed_row", unstorable, line=line, raw=_clip(text)))
            continue
        if not isinstance(record, dict):
            what = type(record).__name__
            malformed.append(
                RowProblem(number, "malformed_row", f"a JSON {what}, not an object", line=line, raw=_dump(record))
            )
            continue
        values = {columns.add(str(k)): v for k, v in record.items()}
        _check_columns(version.uri, len(columns.original))
        rows.append(FileRow(number, line, values, text if isinstance(text, str) else _dump(record)))
    return columns.file(version, rows, malformed)


def parse_json_lines(text: str, version: FileVersion) -> AnnotationFile:
    lines = ((number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip())
    return _json_records(lines, version)


def parse_json_array(text: str, version: FileVersion) -> AnnotationFile:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{version.uri}: not valid JSON at line {exc.lineno}: {exc.msg}",
            hint="a .json file holds one array of objects, or one object per line (JSON Lines)",
        ) from exc
    if not isinstance(items, list):
        raise ConfigError(f"{version.uri}: a JSON {type(items).__name__}, not an array of objects")
    return _json_records(((None, item) for item in items), version)


def parse_parquet(data: bytes, version: FileVersion) -> AnnotationFile:
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConfigError(f"{version.uri} is not a readable Parquet file: {exc}") from exc
    columns = _Columns(version.uri)
    _check_columns(version.uri, len(table.column_names))
    names = [columns.add(name) for name in table.column_names]
    rows = []
    for number, record in enumerate(table.to_pylist(), 1):
        values = {name: _json_value(record[original]) for name, original in zip(names, table.column_names, strict=True)}
        rows.append(FileRow(number, None, values, _dump(values)))
    return columns.file(version, rows, [])


def _json_value(value: Any) -> Any:
    """Arrow values as JSON's: dates and times as ISO text, bytes as text (the rest already is)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _clip(text: object, limit: int = 200) -> str:
    """A rejected record as stored with its reason: the start of it (a 1 MB line is not kept whole)."""
    raw = text if isinstance(text, str) else _dump(text)
    return raw if len(raw) <= limit else f"{raw[:limit]}… ({len(raw):,} characters)"
