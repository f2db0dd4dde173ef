"""`ray job submit --working-dir . -- python jobs/audit.py --config configs/....yaml`: raygan audit as a job.

The same as `python -m raygan audit ...`; raygan must be installed on the cluster (cluster.yaml does).
"""
import sys

from raygan.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["audit", *sys.argv[1:]]))
