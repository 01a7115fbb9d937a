#!/usr/bin/env bash
# GPU image-embedding benchmark on a host with torch/numpy/pillow but not our other dependencies.
# Installs the two efficientnet wheels from .whl/ (no network), then runs benchmarks/gpu_image_embed.py;
# arguments pass through (default --device cuda --images .gpu_media/images). Run from the repository root.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site:. python3 benchmarks/gpu_image_embed.py "$@"
