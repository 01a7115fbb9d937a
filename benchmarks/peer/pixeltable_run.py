"""One whole Pixeltable run (executed in Pixeltable's venv): insert, thumbnail column, embedding index, one query.

Usage: python pixeltable_run.py IMAGE_DIR QUERY_IMAGE  (PIXELTABLE_HOME must be set to a fresh folder)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pixeltable as pxt  # noqa: E402
from pixeltable_udfs import effnet_embed  # noqa: E402


def main() -> None:
    folder, query = Path(sys.argv[1]), sys.argv[2]
    pxt.init()
    table = pxt.create_table("bench_images", {"img": pxt.Image}, if_exists="replace")
    # RGB first: Pixeltable stores the thumbnail as JPEG and fails on palette (GIF) images otherwise.
    table.add_computed_column(thumb=table.img.convert("RGB").thumbnail((256, 256)))
    table.add_embedding_index("img", embedding=effnet_embed)
    table.insert([{"img": str(p)} for p in sorted(folder.iterdir())])
    hits = (
        table.select(table.img, score=table.img.similarity(image=query))
        .order_by(table.img.similarity(image=query), asc=False)
        .limit(5)
        .collect()
    )
    print(f"rows={table.count()} top={len(hits)}")


if __name__ == "__main__":
    main()
