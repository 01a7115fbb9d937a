"""Code that runs inside a benchmark peer's own virtual environment (not part of mm_platform)."""
