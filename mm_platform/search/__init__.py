"""Search over one snapshot: text or image queries, vector routes per model, metadata filters.

Plain Python (no Dagster). ``search`` is the entry point; ``active_models`` decides which model's vectors are
searched; ``compile_filter`` is the safe ``--where`` language; the index layer (exact / HNSW) is in
``exact``, ``ann`` and ``index_store``.
"""

from mm_platform.search.active import ActiveModel, ActiveModels, active_models
from mm_platform.search.ann import Allowed, HnswIndex, HnswParams
from mm_platform.search.engine import SearchError, search
from mm_platform.search.exact import ExactIndex, exact_topk
from mm_platform.search.filters import FilterError, ParsedFilter, compile_filter
from mm_platform.search.hits import SearchHit, filter_schema
from mm_platform.search.index_store import IndexConfig, ModelIndex, clear_index_memo, open_index
from mm_platform.search.row_index import RowIndex

__all__ = [
    "ActiveModel",
    "ActiveModels",
    "Allowed",
    "ExactIndex",
    "FilterError",
    "HnswIndex",
    "HnswParams",
    "IndexConfig",
    "ModelIndex",
    "ParsedFilter",
    "RowIndex",
    "SearchError",
    "SearchHit",
    "active_models",
    "clear_index_memo",
    "compile_filter",
    "exact_topk",
    "filter_schema",
    "open_index",
    "search",
]
