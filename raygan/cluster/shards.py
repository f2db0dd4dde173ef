"""The synthetic shards written by Ray Data: one block per chunk, generated where the cluster has room.

The plan, the staging folder, the check of what was written, the swap and the manifest are
raygan.synthesis.shards'; this module only runs the chunks as a Ray Dataset (from_items, map_batches,
write_parquet). Every chunk's table is raygan.synthesis.shards.chunk_table and the write gets its
parquet options, so the files are byte-identical to those of the plain-pyarrow writer there.

A URI run folder (s3://...) gets its shards written straight to storage by the Ray Data write tasks,
through the run's pyarrow filesystem, so no node's disk holds the only copy; generators are pulled by
the tasks that use them.

Ray Data's own progress output (the "Starting execution" and execution plan lines, progress bars or,
off a terminal, "Total Progress" logging) is switched off for the write: raygan logs its stages instead.
Where raygan draws progress bars (raygan.progress: a terminal, or RAYGAN_PROGRESS=1) the synthesis bar
counts the chunk files in the staging folder while Ray Data writes them.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

import pyarrow as pa
import ray
from pyarrow import fs as pafs
from ray.data import DataContext, SaveMode
from ray.data.datasource import FilenameProvider

from raygan.cluster.runtime import task_setup
from raygan.config import Config
from raygan.data import RealDataset
from raygan.progress import polled
from raygan.runs import RunFolder
from raygan.synthesis.shards import PARQUET_OPTIONS, chunk_generator, chunk_table, part_name, synthesize

logger = logging.getLogger(__name__)


class _PartNames(FilenameProvider):
    """Deterministic names (no write id): the rerun of a write produces the same file names. Ray Data
    appends "-<file of the task>" to this name, which raygan.synthesis.shards.part_name accounts for."""

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        return part_name(task_index).removesuffix("-0.parquet") + ".parquet"


def _generate_chunk(batch: dict, run_location: str, cfg_dict: dict, classes: list[str]) -> pa.Table:
    task_setup(cfg_dict)
    item = {key: values[0] for key, values in batch.items()}  # batch_size=1: one chunk per batch
    return chunk_table(chunk_generator(RunFolder.at(run_location), item), item, classes=classes)


@contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """No Ray Data progress lines or bars for the block below; its warnings still show."""
    ctx = DataContext.get_current()
    saved = (ctx.enable_progress_bars, ctx.print_on_execution_start, ctx.enable_auto_log_stats)
    data_log, progress_log = logging.getLogger("ray.data"), logging.getLogger("ray.data._internal.progress")
    levels = (data_log.level, progress_log.level)
    ctx.enable_progress_bars = False  # also the logging progress Ray 2.60 uses off a terminal
    ctx.print_on_execution_start = False  # "Starting execution of Dataset ..." and its plan
    ctx.enable_auto_log_stats = False
    data_log.setLevel(logging.WARNING)  # "execution finished", "Data sink Parquet finished"
    progress_log.setLevel(logging.ERROR)  # the warning that progress bars are off: we switched them off
    try:
        yield
    finally:
        ctx.enable_progress_bars, ctx.print_on_execution_start, ctx.enable_auto_log_stats = saved
        data_log.setLevel(levels[0])
        progress_log.setLevel(levels[1])


def _write_with_ray_data(cfg: Config, run: RunFolder, resources: dict, classes: list[str]):
    def write(items: list[dict], fs: pafs.FileSystem, staging: str) -> None:
        def written() -> int:
            found = fs.get_file_info(pafs.FileSelector(staging, allow_not_found=True))
            return sum(f.path.endswith(".parquet") for f in found)

        with _quiet_ray_data(), polled(written, total=len(items), desc="synthesis", unit="chunk"):
            ds = ray.data.from_items(items, override_num_blocks=len(items))
            ds = ds.map_batches(_generate_chunk, batch_size=1,
                                fn_kwargs={"run_location": run.location, "cfg_dict": cfg.to_dict(),
                                           "classes": list(classes)},
                                num_cpus=resources.get("num_cpus", 1), num_gpus=0)
            ds.write_parquet(staging, filesystem=fs, filename_provider=_PartNames(),
                             mode=SaveMode.OVERWRITE, **PARQUET_OPTIONS)
        logger.info(f"shards: Ray Data wrote {len(items)} chunks to {staging}")
    return write


def write_shards(cfg: Config, dataset: RealDataset, run: RunFolder, mixtures: dict[str, list[float]],
                 resources: dict) -> dict:
    """Generate and write the synthetic set with Ray Data; returns the manifest's shards section."""
    write = _write_with_ray_data(cfg, run, resources, dataset.classes)
    return synthesize(cfg, dataset, run, mixtures, write=write, engine="with Ray Data")
