"""`ray job submit --working-dir . -- python jobs/synthesize.py --config configs/....yaml`: raygan synthesize as a job.

The same as `python -m raygan synthesize ...`; raygan must be installed on the cluster (cluster.yaml does).
"""
import sys

from raygan.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["synthesize", *sys.argv[1:]]))
