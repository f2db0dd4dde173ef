"""`ray job submit --working-dir . -- python jobs/sweep.py --config configs/....yaml`: the sweep job
(Ray Tune over cfg.sweep on a trained run folder; a rerun with the same sweep.name resumes it)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the submitted working dir

from raygan.cluster.entry import job_main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(job_main("sweep"))
