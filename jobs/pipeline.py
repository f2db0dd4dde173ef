"""`ray job submit --working-dir . -- python jobs/pipeline.py --config configs/....yaml`: raygan pipeline as a job.

The same as `python -m raygan pipeline ...`; raygan must be installed on the cluster (cluster.yaml does).
"""
import sys

from raygan.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["pipeline", *sys.argv[1:]]))
