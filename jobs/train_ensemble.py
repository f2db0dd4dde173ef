"""`ray job submit --working-dir . -- python jobs/train_ensemble.py --config configs/....yaml`: raygan train as a job.

The same as `python -m raygan train ...`; raygan must be installed on the cluster (cluster.yaml does).
"""
import sys

from raygan.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
