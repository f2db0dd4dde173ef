"""MLflow helpers (no Ray): one parent run per job, a child run per (class, member).

Only the job's driver process writes to MLflow: tasks return what they did and the driver logs it, so
a brand-new sqlite store is never created by several processes at once (MLflow 3.17: most of
them fail on its schema creation).
The tracking URI is tracking.tracking_uri, else MLFLOW_TRACKING_URI, else a sqlite file in
output.root; artifacts of a local store go next to it, not into the current directory.

An http(s) tracking server that cannot be reached fails the job within seconds, before anything is
written (``check_server``), rather than falling back to a local store: a cluster job's records would
otherwise land on a head node that may be gone tomorrow. Credentials in the URI never reach a param,
a tag or a message (raygan.secrets), nor standard output: MLflow's own "View run ... at <server URL>"
lines, printed when a run on a server ends, are switched off (MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT).

Validate first, then write: a Tracker opens the store, the experiment and its parent run at the first
thing it logs, so a job refused inside its parent block (shards that differ from the manifest, an
audit holdout too small) leaves no MLflow run and no new store. A new sqlite store is made in a
temporary file and moved into place once MLflow's migrations finished, so a full disk never leaves a
half-made ``mlflow.db`` that every later run would fail to open; store errors name the store and the fix.
"""
from __future__ import annotations

import contextlib
import csv
import logging
import os
from pathlib import Path
from typing import Iterator, Optional

from raygan import logs, provenance
from raygan.config import Config, ConfigError
from raygan.secrets import one_line, redact, redact_tree

# Seconds to open a TCP connection to the tracking server (MLflow itself retries for minutes).
_CONNECT_TIMEOUT_S = 5.0
# MLflow prints "View run <name> at: <server URL>" to stdout when a run on a server ends, password and all.
_QUIET_URLS = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


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


def check_store(cfg: Config) -> None:
    """Refuse, before any work, an existing local sqlite store that MLflow cannot open (half-made or
    damaged): one line naming the file and the fix, instead of every later job in that output.root
    failing on MLflow's migrations once it has trained. A no-op for any other store, a store not made
    yet, or with tracking.enabled=false; it writes nothing (output.root is not created)."""
    if not cfg.tracking.enabled:
        return
    uri = (cfg.tracking.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
           or f"sqlite:///{Path(cfg.output.root).resolve() / 'mlflow.db'}")
    path = _sqlite_path(uri)
    if path is None or not path.exists():
        return
    from mlflow import MlflowClient

    quiet_urls()
    migrations = logging.getLogger("mlflow.store.db.utils")  # its INFO lines as it tries to migrate
    level = migrations.level
    migrations.setLevel(logging.WARNING)
    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as err:  # noqa: BLE001 - sqlalchemy's, MLflow's and sqlite's errors alike
        raise store_error(uri, err) from None
    finally:
        migrations.setLevel(level)


def quiet_urls() -> None:
    """No "View run ... at <URL>" lines from MLflow in this process (they would print credentials)."""
    os.environ[_QUIET_URLS] = "true"


def _sqlite_path(uri: str) -> Optional[Path]:
    """The file of a sqlite:/// store URI (None for any other store, or one with URI options)."""
    if not uri.startswith("sqlite:///") or "?" in uri:
        return None
    return Path(uri[len("sqlite:///"):])


def _remove_sqlite(path: Path) -> None:
    for extra in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)


# What MLflow's migrations say on a sqlite store left half-made (its tables part created: a store made
# in place by raygan before create_store, stopped by a full disk or a signal; or damaged since).
_HALF_MADE = ("already exists", "duplicate column", "no such table", "file is not a database",
              "malformed")


def _half_made(path: Path, first: str) -> ConfigError:
    return ConfigError(f"the MLflow store {path} is half-made or damaged ({redact(first)[:160]}), as an "
                       "earlier run stopped while creating it leaves it; move it aside (mv "
                       f"{path} {path}.broken) and rerun to make a new one, point tracking.tracking_uri "
                       "elsewhere, or set tracking.enabled=false")


def store_error(uri: str, err: BaseException) -> ConfigError:
    """An MLflow store failure as one line naming the store and the fix."""
    path = _sqlite_path(uri)
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if path is not None and path.exists() and any(s in first for s in _HALF_MADE):
        return _half_made(path, first)
    where, fix = (f"the MLflow store {path}", "free space on its disk (or fix its permissions)") if path \
        else (f"the MLflow store at {redact(uri)}", "check that server (its disk, its log)")
    return ConfigError(f"{where} failed: {redact(first)[:200]}; {fix}, point tracking.tracking_uri "
                       "elsewhere, or set tracking.enabled=false")


def create_store(uri: str) -> None:
    """Make a sqlite store that does not exist yet in a temporary file, and move it into place only once
    MLflow's migrations finished (a no-op for an existing store or any other kind). On any failure (a
    full disk) the temporary file goes and nothing is left at the store's path. Of two processes making
    it at once, one links its file into place and the other uses that one."""
    path = _sqlite_path(uri)
    if path is None or path.exists():
        return
    from mlflow import MlflowClient

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments(max_results=1)  # migrates
        try:
            os.link(tmp, path)  # never over a store another process has just made
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links
            if not path.exists():
                os.replace(tmp, path)
    except Exception as err:  # noqa: BLE001 - sqlalchemy's, MLflow's and the disk's errors alike
        raise store_error(uri, err) from None
    finally:
        _remove_sqlite(tmp)


def use_tracking_uri(mlflow, uri: str) -> None:
    """mlflow.set_tracking_uri (a new sqlite store made by create_store), MLflow's URL lines switched
    off, without leaving MLFLOW_TRACKING_URI behind in the environment.

    MLflow 3 also exports the URI as MLFLOW_TRACKING_URI; left there, the next job in the same process
    (a test session, a notebook) would log into this job's store instead of its own.
    """
    quiet_urls()
    create_store(uri)
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
    """Wraps one MLflow parent run, opened at the first thing logged; a no-op when tracking is disabled."""

    def __init__(self, cfg: Config, job: str):
        self.cfg, self.job, self.parent_id = cfg, job, None
        self.enabled, self.run_dir = cfg.tracking.enabled, None
        if self.enabled:
            import mlflow
            self.mlflow = mlflow
            logs.redact_handlers("mlflow")  # its handlers exist once it is imported
            quiet_urls()
            check_server(cfg)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """MLflow's and its store's errors (a full disk: sqlite's "disk I/O error") as one line naming
        the store and the fix (store_error)."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            yield
        except (self.mlflow.exceptions.MlflowException, SQLAlchemyError) as err:
            raise store_error(tracking_uri(self.cfg), err) from None

    def _open(self) -> None:
        """The store, the experiment and the parent run with the config as params, made now (the first
        thing is logged) rather than when the job started, so that a job refused before has none."""
        if self.parent_id is None:
            with self._writing():
                self._start()

    def _start(self) -> None:
        uri = tracking_uri(self.cfg)
        use_tracking_uri(self.mlflow, uri)
        try:
            self.experiment_id = ensure_experiment(self.mlflow, self.cfg)
        except self.mlflow.exceptions.MlflowException as err:  # its text quotes the URI
            raise ConfigError(f"MLflow at {redact(uri)} refused the experiment: {one_line(err)[:300]}; check "
                              "tracking.tracking_uri or set tracking.enabled=false") from None
        flat = {f"{section}.{k}": v for section, values in redact_tree(self.cfg.to_dict()).items()
                for k, v in values.items()}
        run = self.mlflow.start_run(experiment_id=self.experiment_id,
                                    run_name=f"{self.cfg.output.run}:{self.job}")
        self.parent_id = run.info.run_id
        self.mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
        made_by = provenance()
        self.mlflow.set_tags({"raygan.job": self.job, "raygan.run_dir": redact(self.run_dir),
                              "raygan.version": made_by["version"],
                              "raygan.git_commit": made_by["git_commit"] or "none"})

    @contextlib.contextmanager
    def parent(self, run_dir: Path) -> Iterator["Tracker"]:
        """The block of the job's parent run: ended FINISHED, FAILED (an error) or KILLED (a signal),
        if anything was logged in it."""
        if not self.enabled:
            yield self
            return
        self.run_dir = run_dir
        try:
            yield self
        except BaseException as err:
            if self.parent_id is not None:  # the error that ended the job is the one to show
                with contextlib.suppress(Exception):
                    self.mlflow.end_run(status="KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
            raise
        if self.parent_id is not None:
            with self._writing():
                self.mlflow.end_run(status="FINISHED")

    def log_member(self, entry: dict, run_dir: Path) -> Optional[str]:
        """A child run with the member's parameters, its loss curve and its sample grid."""
        if not self.enabled:
            return None
        self._open()
        with self._writing():
            return self._child(entry, run_dir)

    def _child(self, entry: dict, run_dir: Path) -> str:
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
            self._open()
            with self._writing():
                self.mlflow.log_metrics(metrics)

    def log_artifact(self, path: Path) -> None:
        if self.enabled and Path(path).exists():
            self._open()
            with self._writing():
                self.mlflow.log_artifact(str(path))
