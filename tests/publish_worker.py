"""A publisher in its own process, for crash and concurrency tests: ``python -m tests.publish_worker``.

The lake's S3 settings come from the environment (as for the CLI); fault points from MMP_FAULT_PAUSE_AT.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from mm_platform.catalog import open_lake
from tests.factories import partition_writes


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lake", required=True)
    parser.add_argument("--partition", required=True)
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--branch", default=None, help="Publish on this branch of the lake.")
    args = parser.parse_args()
    lake = open_lake(args.lake, dict(os.environ), branch=args.branch)
    result = lake.publish(args.partition, partition_writes(args.partition, args.rows, seed=args.seed))
    json.dump({"seq": result.seq, "noop": result.noop, "stage_id": result.stage_id}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
