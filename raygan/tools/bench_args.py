"""The options of `raygan bench NAME` (the benchmarks are raygan.tools.bench.BENCHMARKS); kept apart
from them so that the command line starts without importing torch."""
from __future__ import annotations

from raygan.config.families import FAMILY_NAMES


def bench_parser(sub, func) -> None:
    """`raygan bench NAME` and the options of every benchmark (raygan.tools.bench.BENCHMARKS)."""
    p = sub.add_parser("bench", help="benchmarks whose results go into docs/")
    p.add_argument("name", choices=["train-step", "dcgan", "ray-scaling", "pack", "gpu", "drift", "eval", "privacy"],
                   help="dcgan: one DCGAN-32 member at batch 64 against a plain loop, with seed 000's "
                        "50K steps projected; pack: P members one after another against one pack of P; "
                        "gpu: every GPU check in one table (no Ray, no MLflow); drift: packed against solo "
                        "members step by step, beside a solo member in channels_last memory; eval: an "
                        "evaluation's classifiers one after another against one pack; privacy: the "
                        "demo member solo, solo under DP-SGD and packed, member-steps/s")
    p.add_argument("--steps", type=int, default=300, help="timed steps per repeat (per member for pack)")
    p.add_argument("--repeats", type=int, default=5, help="alternating repeats of each loop")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--family", default=None,
                   choices=list(FAMILY_NAMES),
                   help="train-step: mlp2d (the grid GAN at batch 100, default) or dcgan (DCGAN-32 at "
                        "batch 64); pack: the members' family (default dcgan, the demo member)")
    p.add_argument("--members", type=int, default=None,
                   help="ray-scaling: members per class, 2 classes (default 4); pack: P (default 30); "
                        "eval: the first this many classifiers (default all); privacy: the pack's P (default 8)")
    p.add_argument("--config", default=None,
                   help="eval: the config whose evaluation's classifiers are timed (default configs/digits.yaml)")
    p.add_argument("--epochs", type=int, default=None, help="eval: classifier epochs per repeat (default 2)")
    p.add_argument("--image-size", type=int, default=None,
                   help="pack: image size (default 8: the digits; other sizes use random images); "
                        "drift: image size (default 32)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of pack's two arms (default 1), of eval's (default torch's: the machine's cores, "
                        "as the pipeline's in-process evaluation uses) and of gpu (default torch's; 1 with --quick)")
    p.add_argument("--d-steps", type=int, default=3, help="privacy: the second DP arm's privacy.d_steps")
    p.add_argument("--sweep", action="store_true", help="pack: P = 1, 2, 4, ..., 64 within --budget")
    p.add_argument("--budget", type=float, default=None, help="pack --sweep: seconds (default 600)")
    p.add_argument("--quick", action="store_true", help="gpu: tiny sizes (with --device cpu: a test)")
    p.add_argument("--workers", type=int, default=2, help="ray-scaling: CPUs of the local Ray")
    p.add_argument("--output", default=None, help="also write the result as markdown to this file")
    p.set_defaults(func=func)


__all__ = ["bench_parser"]
