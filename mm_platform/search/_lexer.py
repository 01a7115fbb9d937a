"""Tokens of the filter language: ASCII only, a closed set of symbols, single-quoted strings.

Anything else (``;``, ``--``, ``/*``, backticks, double quotes, fullwidth or Cyrillic look-alikes, control
characters) is refused here with its position, before a parser ever sees it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum

from mm_platform.errors import ConfigError

__all__ = ["KEYWORDS", "MAX_FILTER_LENGTH", "FilterError", "Kind", "Token", "tokenize"]

MAX_FILTER_LENGTH = 4000
KEYWORDS = frozenset({"and", "or", "not", "in", "between", "is", "null", "true", "false"})
_COMPARISONS = ("<=", ">=", "!=", "<>", "=", "<", ">")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class FilterError(ConfigError):
    """A ``--where`` expression that is not valid; ``column`` is the 1-based position of the offending token."""

    def __init__(self, message: str, *, expression: str, column: int) -> None:
        self.expression = expression
        self.column = column
        caret = f"{expression}\n{' ' * (column - 1)}^"
        super().__init__(f"{message} at column {column}", hint=f"in the filter:\n{caret}")


class Kind(Enum):
    IDENT = "identifier"
    KEYWORD = "keyword"
    STRING = "string"
    NUMBER = "number"
    OP = "operator"
    LPAREN = "'('"
    RPAREN = "')'"
    COMMA = "','"
    END = "end of filter"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str
    """The token as written (for keywords: lower case)."""
    column: int
    """1-based position of its first character."""
    value: object = None
    """The literal's value (str, int or float)."""

    def describe(self) -> str:
        return "end of filter" if self.kind is Kind.END else f"{self.text!r}"


def tokenize(expression: str) -> list[Token]:
    """The tokens of ``expression``, ending with an END token; raises ``FilterError`` on any stray character."""
    if len(expression) > MAX_FILTER_LENGTH:
        raise FilterError(f"filter longer than {MAX_FILTER_LENGTH} characters", expression="", column=1)
    tokens: list[Token] = []
    pos = 0
    while pos < len(expression):
        char = expression[pos]
        column = pos + 1
        if char in " \t\r\n":
            pos += 1
        elif char in "(),":
            kind = {"(": Kind.LPAREN, ")": Kind.RPAREN, ",": Kind.COMMA}[char]
            tokens.append(Token(kind, char, column))
            pos += 1
        elif char == "'":
            value, pos = _string(expression, pos)
            tokens.append(Token(Kind.STRING, expression[column - 1 : pos], column, value))
        elif op := next((o for o in _COMPARISONS if expression.startswith(o, pos)), None):
            tokens.append(Token(Kind.OP, "!=" if op == "<>" else op, column))
            pos += len(op)
        elif (number := _NUMBER.match(expression, pos)) and not _glued(expression, number.end()):
            text = number.group()
            number_value = _number(text, expression, column)
            tokens.append(Token(Kind.NUMBER, text, column, number_value))
            pos = number.end()
        elif (word := _IDENT.match(expression, pos)) and not _glued(expression, word.end()):
            text = word.group()
            if text.lower() in KEYWORDS:
                tokens.append(Token(Kind.KEYWORD, text.lower(), column))
            else:
                tokens.append(Token(Kind.IDENT, text, column))
            pos = word.end()
        else:
            bad = (
                pos
                if not (_NUMBER.match(expression, pos) or _IDENT.match(expression, pos))
                else _glue_at(expression, pos)
            )
            raise FilterError(_unexpected(expression[bad]), expression=expression, column=bad + 1)
    tokens.append(Token(Kind.END, "", len(expression) + 1))
    return tokens


_INT64_MAX = 2**63 - 1
_MAX_NUMBER_CHARS = 40  # longer than any int64 or double needs; never convert a 5,000-digit literal


def _number(text: str, expression: str, column: int) -> int | float:
    """A literal as the value every column type can compare with (int64 or a finite double), or an error."""
    if len(text) <= _MAX_NUMBER_CHARS:
        value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
        if (isinstance(value, int) and abs(value) <= _INT64_MAX) or (isinstance(value, float) and math.isfinite(value)):
            return value
    shown = text if len(text) <= 24 else f"{text[:20]}… ({len(text)} characters)"
    raise FilterError(
        f"the number {shown} is out of range: integers go up to {_INT64_MAX:,} and decimals must be finite",
        expression=expression,
        column=column,
    )


def _string(expression: str, start: int) -> tuple[str, int]:
    """A single-quoted string from ``start``; ``''`` is a quote inside it. Returns (value, end position)."""
    out: list[str] = []
    pos = start + 1
    while pos < len(expression):
        char = expression[pos]
        if char == "'":
            if expression.startswith("''", pos):
                out.append("'")
                pos += 2
                continue
            return "".join(out), pos + 1
        if unicodedata.category(char) == "Cc" and char not in "\t":
            raise FilterError(_unexpected(char), expression=expression, column=pos + 1)
        out.append(char)
        pos += 1
    raise FilterError("unterminated string (strings are single-quoted)", expression=expression, column=start + 1)


def _glued(expression: str, end: int) -> bool:
    """A word or number followed directly by a non-ASCII letter/digit (e.g. a Cyrillic look-alike)."""
    return end < len(expression) and not expression[end].isascii() and expression[end].isalnum()


def _glue_at(expression: str, pos: int) -> int:
    match = _IDENT.match(expression, pos) or _NUMBER.match(expression, pos)
    return match.end() if match else pos


def _unexpected(char: str) -> str:
    if not char.isascii() or not char.isprintable():
        name = unicodedata.name(char, "unnamed character")
        return f"unexpected {char!r} (U+{ord(char):04X} {name}; only ASCII names and operators are allowed)"
    if char == '"':
        return "unexpected '\"' (strings are single-quoted; names are written bare)"
    return f"unexpected {char!r}"
