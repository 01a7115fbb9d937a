"""``python -m mm_platform`` is ``mmp``."""

from mm_platform.cli import main

main()
