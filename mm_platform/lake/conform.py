"""Rows brought to a table's schema before they are staged: cast, with new columns added by schema evolution."""

from __future__ import annotations

import pyarrow as pa

from mm_platform.errors import StageError
from mm_platform.lake.schemas import TableSpec


def conform(spec: TableSpec, current: pa.Schema, rows: pa.Table, partition: str) -> tuple[pa.Table, pa.Schema]:
    """Cast rows to the table's schema, adding new columns by schema evolution; name what does not fit."""
    target_fields = list(current)
    known = set(current.names)
    for name in rows.column_names:
        if name not in known:
            new_field = rows.schema.field(name).with_nullable(True)
            if pa.types.is_null(new_field.type):
                new_field = new_field.with_type(pa.string())
            target_fields.append(new_field)
    target = pa.schema(target_fields)
    columns = []
    for target_field in target:
        if target_field.name in rows.column_names:
            column = rows.column(target_field.name)
            if not target_field.nullable and column.null_count:
                raise StageError(
                    f"table {spec.name}, partition {partition}: column {target_field.name!r} has "
                    f"{column.null_count} null value(s) but the table requires a value",
                    hint="fill the column in the producer",
                )
            try:
                columns.append(column.cast(target_field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise StageError(
                    f"table {spec.name}, partition {partition}: column {target_field.name!r} of type "
                    f"{column.type} does not fit the table's type {target_field.type}: {exc}",
                    hint="change the producer's output type, or add a new column instead",
                ) from exc
        elif target_field.nullable:
            columns.append(pa.nulls(rows.num_rows, target_field.type))
        else:
            raise StageError(
                f"table {spec.name}, partition {partition}: required column {target_field.name!r} is missing",
                hint=f"the table needs: {', '.join(f.name for f in target if not f.nullable)}",
            )
    return pa.Table.from_arrays(columns, schema=target), target
