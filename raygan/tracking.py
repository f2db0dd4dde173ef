"""MLflow helpers (no Ray): one parent run per job, a child run per (class, member).

Only the job's driver process writes to MLflow: tasks return what they did and the driver logs it, so
a brand-new sqlite store is never created by several processes at once (MLflow 3.17: most of
them fail on its schema creation).
The tracking URI is tracking.tracking_uri, else MLFLOW_TRACKING_URI, else a sqlite file in
output.root; artifacts of a local store go next to it, not into the current directory.

An http(s) tracking server that cannot be reached fails the job within seconds, before anything is
written (``check_server``), rather than falling back to a local store: a cluster job's records would
otherwise land on a head node that may be gone tomorrow. Credentials in the URI never reach a param,
a tag or a message (raygan.secrets).
"""
from __future__ import annotations

import csv
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from raygan import logs, provenance
from raygan.config import Config, ConfigError
from raygan.secrets import one_line, redact, redact_tree

# Seconds to open a TCP connection to the tracking server (MLflow itself retries for minutes).
_CONNECT_TIMEOUT_S = 5.0


def tracking_uri(cfg: Config) -> str:
    if cfg.tracking.tracking_uri:
        return cfg.tracking.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = Path(cfg.output.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def check_server(cfg: Config) -> None:
    """Refuse, within seconds, an http(s) tracking server nothing answers on (a no-op for a local
    store or with tracking.enabled=false)."""
    import socket
    from urllib.parse import urlsplit

    if not cfg.tracking.enabled:
        return
    uri = cfg.tracking.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname or "", port), timeout=_CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise ConfigError(f"the MLflow tracking server {redact(uri)} cannot be reached ({reason}); start "
                          "it, fix tracking.tracking_uri / MLFLOW_TRACKING_URI, or set "
                          "tracking.enabled=false") from None


def use_tracking_uri(mlflow, uri: str) -> None:
    """mlflow.set_tracking_uri, without leaving MLFLOW_TRACKING_URI behind in the environment.

    MLflow 3 also exports the URI as MLFLOW_TRACKING_URI; left there, the next job in the same process
    (a test session, a notebook) would log into this job's store instead of its own.
    """
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def ensure_experiment(mlflow, cfg: Config) -> str:
    name = f"raygan/{cfg.output.experiment}"
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifact_location = None
    if tracking_uri(cfg).startswith("sqlite:///"):
        artifact_location = (Path(cfg.output.root).resolve() / "mlartifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=artifact_location)


class Tracker:
    """Wraps one MLflow parent run; a no-op when tracking is disabled."""

    def __init__(self, cfg: Config, job: str):
        self.cfg, self.job, self.parent_id = cfg, job, None
        self.enabled = cfg.tracking.enabled
        if self.enabled:
            import mlflow
            self.mlflow = mlflow
            logs.redact_handlers("mlflow")  # its handlers exist once it is imported
            check_server(cfg)
            use_tracking_uri(mlflow, tracking_uri(cfg))
            try:
                self.experiment_id = ensure_experiment(mlflow, cfg)
            except mlflow.exceptions.MlflowException as err:  # its text quotes the URI
                raise ConfigError(f"MLflow at {redact(tracking_uri(cfg))} refused the experiment: "
                                  f"{one_line(err)[:300]}; check tracking.tracking_uri or set "
                                  "tracking.enabled=false") from None

    @contextmanager
    def parent(self, run_dir: Path) -> Iterator["Tracker"]:
        if not self.enabled:
            yield self
            return
        flat = {f"{section}.{k}": v for section, values in redact_tree(self.cfg.to_dict()).items()
                for k, v in values.items()}
        with self.mlflow.start_run(experiment_id=self.experiment_id,
                                   run_name=f"{self.cfg.output.run}:{self.job}") as run:
            self.parent_id = run.info.run_id
            self.mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
            made_by = provenance()
            self.mlflow.set_tags({"raygan.job": self.job, "raygan.run_dir": redact(run_dir),
                                  "raygan.version": made_by["version"],
                                  "raygan.git_commit": made_by["git_commit"] or "none"})
            yield self

    def log_member(self, entry: dict, run_dir: Path) -> Optional[str]:
        """A child run with the member's parameters, its loss curve and its sample grid."""
        if not self.enabled:
            return None
        folder = (Path(run_dir) / entry["generator"]).parent if "generator" in entry else \
            Path(run_dir) / "members" / entry["class"] / str(entry["member"])
        with self.mlflow.start_run(experiment_id=self.experiment_id, nested=True,
                                   parent_run_id=self.parent_id,
                                   run_name=f"{entry['class']}/{entry['member']}") as child:
            self.mlflow.log_params({k: entry[k] for k in ("class", "member", "seed", "steps")
                                    if k in entry})
            self.mlflow.log_metrics({"seconds": entry["seconds"], "final_d_loss": entry["final_d_loss"],
                                     "final_g_loss": entry["final_g_loss"]})
            self._log_losses(folder / "losses.csv")
            for name in ("samples.png", "losses.csv"):
                if (folder / name).exists():
                    self.mlflow.log_artifact(str(folder / name))
            return child.info.run_id

    def _log_losses(self, path: Path, points: int = 200) -> None:
        if not path.exists():
            return
        import time

        from mlflow.entities import Metric
        with open(path) as f:
            rows = list(csv.DictReader(f))
        stride = max(1, len(rows) // points)
        now = int(time.time() * 1000)
        metrics = []
        for row in rows[stride - 1::stride]:
            step = int(row["step"])
            metrics += [Metric("d_loss", float(row["d_loss"]), now, step),
                        Metric("g_loss", float(row["g_loss"]), now, step)]
        run_id = self.mlflow.active_run().info.run_id
        self.mlflow.tracking.MlflowClient().log_batch(run_id, metrics=metrics)

    def log_metrics(self, metrics: dict) -> None:
        if self.enabled:
            self.mlflow.log_metrics(metrics)

    def log_artifact(self, path: Path) -> None:
        if self.enabled and Path(path).exists():
            self.mlflow.log_artifact(str(path))
