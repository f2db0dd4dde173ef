"""`ray job submit --working-dir . -- python jobs/sweep.py --config configs/....yaml`: raygan sweep as a job.

The same as `python -m raygan sweep ...`; raygan must be installed on the cluster (cluster.yaml does).
"""
import sys

from raygan.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["sweep", *sys.argv[1:]]))
