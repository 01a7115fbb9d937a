"""The data tables one lake holds, given to it by whoever opens it (the domain's ``mm_platform.catalog``).

The lake never decides which tables exist: it creates, stages, snapshots, rolls back and vacuums the tables
of the catalog it was opened with. An immutable value, so two lakes opened with different catalogs never
see each other's tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

from mm_platform.errors import ConfigError
from mm_platform.lake.schemas import TableSpec


class TableCatalog(Mapping[str, TableSpec]):
    """Table name -> spec, in the order given (the order tables are listed, created and vacuumed in)."""

    def __init__(self, specs: Iterable[TableSpec]) -> None:
        found: dict[str, TableSpec] = {}
        for spec in specs:
            if spec.name in found:
                raise ConfigError(f"table {spec.name!r} is in the catalog twice", hint="give each table one spec")
            found[spec.name] = spec
        self._specs = MappingProxyType(found)

    def __getitem__(self, name: str) -> TableSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"TableCatalog({', '.join(self._specs)})"

    def spec(self, name: str) -> TableSpec:
        """The table's spec; an unknown name is a ``ConfigError`` listing the known tables."""
        try:
            return self._specs[name]
        except KeyError:
            raise ConfigError(f"unknown table {name!r}", hint=f"known tables: {', '.join(self._specs)}") from None

    def restorable(self) -> list[str]:
        """The tables a rollback returns to an earlier version (an audit trail never goes back)."""
        return [name for name, spec in self._specs.items() if spec.restorable]

    def retiring(self) -> list[TableSpec]:
        """The tables whose rows retire values for good (``TableSpec.retires``)."""
        return [spec for spec in self._specs.values() if spec.retires is not None]

    def with_tables(self, specs: Mapping[str, TableSpec] | Iterable[TableSpec]) -> TableCatalog:
        """This catalog plus more tables."""
        extra = specs.values() if isinstance(specs, Mapping) else specs
        return TableCatalog([*self._specs.values(), *extra])
