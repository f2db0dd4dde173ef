"""MLflow records of Tune sweeps: one MLflow run per trial, written by the driver through public APIs.

The callback is a ``ray.tune.logger.LoggerCallback`` (Tune calls its ``log_trial_*`` hooks in the
driver) and writes with ``mlflow.MlflowClient`` alone (create / search / update runs, ``log_batch``,
``set_terminated``), so neither a Ray nor an MLflow upgrade that moves a private helper breaks it.
Only the driver writes: Tune workers never open the tracking store (several processes creating a new
sqlite store at once fail; see raygan.cluster.sweep).

Every run is tagged ``raygan.sweep``, ``raygan.trial_id``, ``raygan.sweep_storage``, ``raygan.job``,
``raygan.run_dir``, ``raygan.sweep_target`` and ``trial_name``; its params are the trial's config (as
mapped by ``params``, nested dicts flattened with ``/``) and every result is one ``log_batch`` of the
chosen metrics at ``step_key``. A trial restored by ``Tuner.restore`` logs into the run it already has,
found by its ``raygan.trial_id`` and ``raygan.sweep_storage`` tags, so a sweep holds one run per trial.
Tag and param values pass through raygan.secrets.redact, and MLflow's "View run ... at <URL>" lines
are switched off (raygan.tracking.quiet_urls).

Tune pickles the callback into its experiment state (tuner.pkl) and unpickles it on a restore: it holds
plain values only, and opens its MlflowClient lazily in the process that uses it.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Optional

from ray.tune.logger import LoggerCallback

from raygan.config import Config
from raygan.runs import RunFolder
from raygan.secrets import redact

logger = logging.getLogger(__name__)

_BATCH = 100  # MLflow's limit on params (and tags) in one log_batch
# What a pickled callback keeps; anything else in an unpickled state (Ray's helper objects, held by the
# MLflowLoggerCallback subclass that older sweeps pickled) is dropped.
_FIELDS = ("tracking_uri", "experiment_name", "artifact_location", "tags", "storage", "metrics",
           "step_key", "params_of")


def flat_params(config: dict, prefix: str = "") -> dict[str, str]:
    """A trial's config as MLflow params: nested dicts flattened with ``/`` (as Tune's MLflow logger
    did), every value a redacted string."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_params(value, prefix=f"{name}/"))
        else:
            out[name] = redact(str(value))
    return out


class SweepMLflowLogger(LoggerCallback):
    """One MLflow run per Tune trial, resumed (not duplicated) for a trial restored after a crash."""

    artifact_location: Optional[str] = None  # absent from the state of callbacks pickled by older sweeps

    def __init__(self, *, tracking_uri: str, experiment_name: str, storage: str, tags: dict,
                 metrics: tuple, step_key: str, params_of: Callable[[dict], dict] = dict,
                 artifact_location: Optional[str] = None):
        self.tracking_uri, self.experiment_name = tracking_uri, experiment_name
        self.artifact_location, self.tags, self.storage = artifact_location, dict(tags), storage
        self.metrics, self.step_key, self.params_of = tuple(metrics), step_key, params_of
        self._opened()

    # --- pickling: plain values only ------------------------------------------------------------------
    def _opened(self) -> None:
        self._client, self._experiment_id, self._runs = None, None, {}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k in _FIELDS}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({k: v for k, v in state.items() if k in _FIELDS})
        self._opened()

    # --- MLflow -----------------------------------------------------------------------------------------
    def client(self):
        """The MlflowClient of this process (made on first use) and the experiment's id."""
        if self._client is None:
            from mlflow import MlflowClient

            from raygan.tracking import quiet_urls

            quiet_urls()  # set_terminated prints "View run ... at <URL>", credentials and all
            client = MlflowClient(tracking_uri=self.tracking_uri)
            found = client.get_experiment_by_name(self.experiment_name)
            self._experiment_id = found.experiment_id if found is not None else client.create_experiment(
                self.experiment_name, artifact_location=self.artifact_location)
            self._client = client
        return self._client

    def _existing_run(self, trial_id: str) -> Optional[str]:
        """The run an earlier driver opened for this trial of this sweep storage, if any."""
        client, storage = self.client(), redact(self.storage)
        # Filter on the trial id only: a storage path may hold quotes the filter grammar rejects.
        for run in client.search_runs([self._experiment_id],
                                      filter_string=f"tags.`raygan.trial_id` = '{trial_id}'"):
            if run.data.tags.get("raygan.sweep_storage") == storage:
                return run.info.run_id
        return None

    def _run_id(self, trial) -> str:
        """The trial's run: known, found by its tags (a restored trial), or created."""
        run_id = self._runs.get(trial.trial_id)
        if run_id is None:
            run_id = self._existing_run(trial.trial_id)
            if run_id is not None:
                self.client().update_run(run_id, status="RUNNING")
                logger.debug(f"sweep: trial {trial.trial_id} logs into its MLflow run {run_id}")
            else:
                tags = {**self.tags, "trial_name": str(trial), "raygan.trial_id": trial.trial_id,
                        "raygan.sweep_storage": self.storage}
                run_id = self.client().create_run(
                    self._experiment_id, run_name=str(trial),
                    tags={k: redact(str(v)) for k, v in tags.items()}).info.run_id
            self._runs[trial.trial_id] = run_id
        return run_id

    def _log_params(self, run_id: str, trial) -> None:
        """The trial's config as params; those the run already holds (a restored trial) are skipped."""
        from mlflow.entities import Param

        have = self.client().get_run(run_id).data.params
        todo = [Param(k, v) for k, v in flat_params(self.params_of(trial.config)).items() if k not in have]
        for i in range(0, len(todo), _BATCH):
            self.client().log_batch(run_id, params=todo[i:i + _BATCH])

    # --- Tune's hooks (driver) ----------------------------------------------------------------------------
    def log_trial_start(self, trial) -> None:
        self._log_params(self._run_id(trial), trial)

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        # One batch per result: a commit per metric costs about 1 s a result on a busy sqlite store,
        # which slows Tune's event loop.
        from mlflow.entities import Metric

        step = int(result.get(self.step_key) or iteration)
        now = int(result.get("timestamp") or time.time()) * 1000
        metrics = [Metric(key, float(result[key]), now, step) for key in self.metrics
                   if isinstance(result.get(key), (int, float))]
        if metrics:
            self.client().log_batch(self._run_id(trial), metrics=metrics)

    def log_trial_end(self, trial, failed: bool = False) -> None:
        self.client().set_terminated(self._run_id(trial), status="FAILED" if failed else "FINISHED")
        self._runs.pop(trial.trial_id, None)


def mlflow_callbacks(cfg: Config, run: RunFolder, storage: str, *, metrics: tuple, step_key: str,
                     params: Callable[[dict], dict]) -> list:
    """The driver's Tune callbacks that log a sweep's trials to MLflow ([] with tracking disabled).

    ``metrics``: the result keys logged every result, at step ``result[step_key]``; ``params``: a
    trial's config -> the params its run records. The experiment is created here, by this one process,
    with its artifact location (raygan.tracking.ensure_experiment)."""
    if not cfg.tracking.enabled:
        return []
    import mlflow

    from raygan import logs
    from raygan.tracking import ensure_experiment, tracking_uri, use_tracking_uri

    uri = tracking_uri(cfg)
    use_tracking_uri(mlflow, uri)
    logs.redact_handlers("mlflow")
    experiment_id = ensure_experiment(mlflow, cfg)
    artifact_location = mlflow.MlflowClient(tracking_uri=uri).get_experiment(experiment_id).artifact_location
    tags = {"raygan.job": "sweep", "raygan.sweep": cfg.sweep.name, "raygan.run_dir": run.location,
            "raygan.sweep_storage": storage, "raygan.sweep_target": cfg.sweep.target}
    return [SweepMLflowLogger(tracking_uri=uri, experiment_name=f"raygan/{cfg.output.experiment}",
                              storage=storage, tags=tags, metrics=metrics, step_key=step_key,
                              params_of=params, artifact_location=artifact_location)]
