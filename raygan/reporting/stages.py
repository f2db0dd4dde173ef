"""The pipeline's time per stage (issue 28): train, synthesize, evaluate, audit, report.

Observation only: the clock reads ``time.perf_counter`` around each stage and changes nothing the
stages do (seeds, classifiers, TSTR/TRTR numbers). A stage a resumed pipeline finds done still runs
its checks and is reported with the seconds they took (near zero); a stage that does not apply to the
run (no evaluation of 2D points, audit off) is reported with 0 s and ``ran: false``. Shares are of the
five stages' sum; what the pipeline spent outside them (loading the data, checks before training) is
``outside_stages_seconds``.
"""
from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from raygan.config import Config
from raygan.runs import atomic_write_text

logger = logging.getLogger(__name__)

STAGES = ("train", "synthesize", "evaluate", "audit", "report")


class StageClock:
    """Wall-clock seconds per pipeline stage, from the clock's creation to ``timing()``."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.ran = dict.fromkeys(STAGES, False)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if name not in self.seconds:
            raise ValueError(f"unknown pipeline stage {name!r}; one of {', '.join(STAGES)}")
        t0 = time.perf_counter()
        logger.debug(f"stage {name}: begun")  # what tests/integration/test_chaos_stages.py waits for
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0
            self.ran[name] = True

    def timing(self) -> dict:
        """The stages' seconds and shares, the pipeline's wall-clock total and what lay outside them."""
        total = time.perf_counter() - self._start
        staged = sum(self.seconds.values())
        stages = {name: {"seconds": round(s, 3), "share": round(s / staged, 4) if staged > 0 else 0.0,
                         "ran": self.ran[name]} for name, s in self.seconds.items()}
        return {"stages": stages, "stages_seconds": round(staged, 3), "total_seconds": round(total, 3),
                "outside_stages_seconds": round(max(0.0, total - staged), 3)}


def stage_table(timing: dict) -> str:
    """The timing as a small text table (one line per stage, then the total)."""
    lines = ["pipeline stages:", f"  {'stage':<11}{'seconds':>9}{'share':>8}"]
    for name, s in timing["stages"].items():
        note = "" if s["ran"] else "  (not run)"
        lines.append(f"  {name:<11}{s['seconds']:>9.1f}{100 * s['share']:>7.1f}%{note}")
    lines.append(f"  {'total':<11}{timing['stages_seconds']:>9.1f}{100.0:>7.1f}%  "
                 f"(+{timing['outside_stages_seconds']:.1f}s loading data and checks; "
                 f"{timing['total_seconds']:.1f}s wall)")
    return "\n".join(lines)


def stage_line(timing: dict) -> str:
    """The timing in one line, for the demo's summary."""
    parts = [f"{name} {s['seconds']:.0f}s ({100 * s['share']:.0f}%)" for name, s in timing["stages"].items()]
    return ", ".join(parts)


def stage_metrics(timing: dict) -> dict[str, float]:
    """MLflow metrics: stage_seconds_<stage>, stage_share_<stage> and pipeline_seconds."""
    metrics = {f"stage_seconds_{n}": s["seconds"] for n, s in timing["stages"].items()}
    metrics.update({f"stage_share_{n}": s["share"] for n, s in timing["stages"].items()})
    metrics["pipeline_seconds"] = timing["total_seconds"]
    return metrics


def write_timing(run_path: Path, timing: dict) -> Path:
    """eval/timing.json in the run folder, written atomically (and uploaded for a URI run folder)."""
    path = Path(run_path) / "eval" / "timing.json"
    atomic_write_text(path, json.dumps(timing, indent=2) + "\n")
    return path


def record_timing(cfg: Config, run_path: Path, clock: StageClock) -> dict:
    """The pipeline's end: eval/timing.json, the table in the log, the metrics (and the file) in an
    MLflow parent run of the "pipeline" job; returns the timing."""
    from raygan.tracking import Tracker

    timing = clock.timing()
    path = write_timing(run_path, timing)
    logger.info(stage_table(timing))
    tracker = Tracker(cfg, "pipeline")
    with tracker.parent(Path(run_path)):
        tracker.log_metrics(stage_metrics(timing))
        tracker.log_artifact(path)
    return timing
