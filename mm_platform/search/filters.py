"""A small, safe filter language over the searchable columns, compiled to a ``pyarrow.compute.Expression``.

    modality = 'image' and width > 400
    mime_type in ('image/jpeg', 'image/png') or (duration_s between 1 and 30 and not has_audio)
    camera_make is not null

Grammar (keywords case-insensitive)::

    expr  := term ("or" term)*          term := factor ("and" factor)*
    factor:= "not" factor | "(" expr ")" | NAME test | BOOLEAN_NAME
    test  := OP literal | ["not"] "in" "(" literal ("," literal)* ")"
           | ["not"] "between" literal "and" literal | "is" ["not"] "null"
    OP    := = | != | <> | < | <= | > | >=        literal := 'string' | number | true | false

Why it is safe: it is parsed by this module into Arrow expression objects, never spliced into SQL or any
other string that something evaluates; names must be columns of the given schema (so no function calls,
no paths, no other tables); literals are checked against the column's type; nesting and length are bounded.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mm_platform.search._lexer import FilterError, Kind, Token, tokenize

__all__ = ["FilterError", "ParsedFilter", "compile_filter", "referenced_columns", "searchable_schema"]

MAX_DEPTH = 32


class ParsedFilter:
    """A compiled filter: the Arrow expression and the columns it reads."""

    def __init__(self, expression: pc.Expression, columns: frozenset[str], text: str) -> None:
        self.expression = expression
        self.columns = columns
        self.text = text

    def __repr__(self) -> str:
        return f"ParsedFilter({self.text!r})"


def compile_filter(text: str, schema: pa.Schema) -> ParsedFilter:
    """Parse ``text`` and compile it against ``schema`` (the searchable columns); raises ``FilterError``."""
    parser = _Parser(text, schema)
    expression = parser.parse()
    return ParsedFilter(expression, frozenset(parser.columns), text)


def referenced_columns(text: str) -> list[str]:
    """The names a filter mentions (before checking them), to know which columns to load."""
    return [t.text for t in tokenize(text) if t.kind is Kind.IDENT]


class _Parser:
    def __init__(self, text: str, schema: pa.Schema) -> None:
        self.text = text
        self.schema = schema
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0
        self.columns: set[str] = set()

    # --- token helpers --------------------------------------------------------------------------------

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def error(self, message: str, token: Token | None = None) -> FilterError:
        token = token or self.token
        return FilterError(message, expression=self.text, column=token.column)

    def take(self) -> Token:
        token = self.token
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        if self.token.kind is Kind.KEYWORD and self.token.text == word:
            self.pos += 1
            return True
        return False

    def expect(self, kind: Kind, what: str) -> Token:
        if self.token.kind is not kind:
            raise self.error(f"expected {what}, got {self.token.describe()}")
        return self.take()

    # --- grammar --------------------------------------------------------------------------------------

    def parse(self) -> pc.Expression:
        if self.token.kind is Kind.END:
            raise self.error("empty filter")
        expression = self.expr()
        if self.token.kind is not Kind.END:
            raise self.error(f"unexpected {self.token.describe()}" + _after_hint(self.token))
        return expression

    def expr(self) -> pc.Expression:
        result = self.term()
        while self.keyword("or"):
            result = result | self.term()
        return result

    def term(self) -> pc.Expression:
        result = self.factor()
        while self.keyword("and"):
            result = result & self.factor()
        return result

    def factor(self) -> pc.Expression:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"filter nested deeper than {MAX_DEPTH} levels")
        try:
            if self.keyword("not"):
                return ~self.factor()
            if self.token.kind is Kind.LPAREN:
                self.take()
                inner = self.expr()
                self.expect(Kind.RPAREN, "')'")
                return inner
            return self.test(self.column())
        finally:
            self.depth -= 1

    def column(self) -> tuple[str, pa.DataType]:
        token = self.token
        if token.kind is not Kind.IDENT:
            raise self.error(f"expected a column name, got {token.describe()}")
        self.take()
        if token.text not in self.schema.names:
            close = difflib.get_close_matches(token.text.lower(), self.schema.names, n=1)
            known = f"did you mean {close[0]!r}?" if close else "known: " + ", ".join(sorted(self.schema.names))
            raise self.error(f"unknown column {token.text!r} ({known})", token)
        if self.token.kind is Kind.LPAREN:
            raise self.error("function calls are not supported")
        self.columns.add(token.text)
        return token.text, self.schema.field(token.text).type

    def test(self, column: tuple[str, pa.DataType]) -> pc.Expression:
        name, type_ = column
        field = pc.field(name)
        if self.token.kind is Kind.OP:
            op = self.take().text
            return _compare(op, field, self.literal(type_))
        if self.keyword("is"):
            negate = self.keyword("not")
            if not self.keyword("null"):
                raise self.error(f"expected 'null' after 'is', got {self.token.describe()}")
            return field.is_valid() if negate else field.is_null()
        if pa.types.is_boolean(type_) and self._ends_condition():
            return field == True  # noqa: E712 — a bare boolean column: `has_audio` means `has_audio = true`
        negate = self.keyword("not")
        if self.keyword("in"):
            values = self.literal_list(type_)
            test = field.isin(pa.array(values, type=type_))
        elif self.keyword("between"):
            low = self.literal(type_)
            if not self.keyword("and"):
                raise self.error(f"expected 'and' in 'between … and …', got {self.token.describe()}")
            test = (field >= low) & (field <= self.literal(type_))
        else:
            raise self.error(
                f"expected a comparison (= != < <= > >=), 'in', 'between' or 'is' after {name!r}, "
                f"got {self.token.describe()}"
            )
        return ~test if negate else test

    def _ends_condition(self) -> bool:
        token = self.token
        return token.kind in (Kind.END, Kind.RPAREN) or (token.kind is Kind.KEYWORD and token.text in ("and", "or"))

    def literal_list(self, type_: pa.DataType) -> list[Any]:
        self.expect(Kind.LPAREN, "'(' after 'in'")
        values = [self.literal(type_)]
        while self.token.kind is Kind.COMMA:
            self.take()
            values.append(self.literal(type_))
        self.expect(Kind.RPAREN, "')' to close the 'in' list")
        return values

    def literal(self, type_: pa.DataType) -> Any:
        token = self.token
        if token.kind is Kind.KEYWORD and token.text == "null":
            raise self.error("compare with null using 'is null' / 'is not null'")
        if token.kind is Kind.KEYWORD and token.text in ("true", "false"):
            value: Any = token.text == "true"
        elif token.kind in (Kind.STRING, Kind.NUMBER):
            value = token.value
        else:
            raise self.error(f"expected a value ('text', a number, true or false), got {token.describe()}")
        self.take()
        return _coerce(value, type_, self, token)


def _coerce(value: Any, type_: pa.DataType, parser: _Parser, token: Token) -> Any:
    """The literal as a value of the column's type, or a FilterError naming both."""
    if pa.types.is_boolean(type_) and isinstance(value, bool):
        return value
    if (pa.types.is_integer(type_) or pa.types.is_floating(type_)) and _is_number(value):
        return value
    if (pa.types.is_string(type_) or pa.types.is_large_string(type_)) and isinstance(value, str):
        return value
    if pa.types.is_timestamp(type_) and isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            raise parser.error(f"{token.text} is not an ISO date/time", token) from None
        return pa.scalar(stamp, type=type_)  # a naive time is read as UTC, like the stored ones
    raise parser.error(f"{token.text} does not fit a column of type {type_}", token)


def _compare(op: str, field: pc.Expression, value: Any) -> pc.Expression:
    if op == "=":
        return field == value
    if op == "!=":
        return field != value
    if op == "<":
        return field < value
    if op == "<=":
        return field <= value
    if op == ">":
        return field > value
    return field >= value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _after_hint(token: Token) -> str:
    if token.kind is Kind.IDENT or token.kind in (Kind.STRING, Kind.NUMBER):
        return " (combine conditions with 'and' / 'or')"
    return ""


def searchable_schema(*schemas: pa.Schema, exclude: Sequence[str] = ()) -> pa.Schema:
    """The scalar columns of ``schemas`` (the first one wins a name), the names a filter may use."""
    fields: dict[str, pa.Field] = {}
    for schema in schemas:
        for field in schema:
            scalar = not (pa.types.is_nested(field.type) or pa.types.is_binary(field.type))
            if scalar and field.name not in fields and field.name not in exclude:
                fields[field.name] = field
    return pa.schema(list(fields.values()))
