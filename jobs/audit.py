"""`ray job submit --working-dir . -- python jobs/audit.py --config configs/....yaml`: the memorisation
audit of the run folder the config names (output.root/experiment/run)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the submitted working dir

from raygan.cluster.entry import job_main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(job_main("audit"))
