"""The evaluation sections of the config schema: eval, sweep, grid_eval and audit (raygan.config.schema
assembles them with the others into Config)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from raygan.config.fields import _f


@dataclass(frozen=True)
class EvalConfig:
    arch: str = _f("simplecnn", "Downstream classifier: simplecnn (seed 000 Supplement B), resnet18 "
                   "(3x3 stem, no max-pool) or mlp (seed 002).", choices=("simplecnn", "resnet18", "mlp"))
    epochs: int = _f(20, "Classifier epochs; the epoch is picked on the real validation split.",
                     minimum=1)
    lr: float = _f(1e-3, "Classifier learning rate (Adam).", minimum=0.0, exclusive_min=True)
    batch_size: int = _f(64, "Classifier minibatch size.", minimum=2)
    weight_decay: float = _f(0.0, "Classifier weight decay.", minimum=0.0)
    augment: str = _f("none", "Augmentation of training batches: none, flip_crop (seed 001), crop "
                      "(seed 001's random crop without the flip, for digits and other images that are "
                      "not mirror symmetric) or pathology (seed 000 Supplement B).",
                      choices=("none", "flip_crop", "crop", "pathology"))
    repeats: int = _f(10, "Classifier trainings per setting (R); results are mean +- std.", minimum=1)
    max_ensemble: Optional[int] = _f(None, "Largest T of the ensemble-size curve; null means "
                                     "ensemble.members.", minimum=1)
    ensemble_sizes: list = _f([], "Ensemble sizes T the TSTR curve measures (each in 1..max_ensemble), "
                              "e.g. [5, 10]; empty: every T = 1..max_ensemble.")
    mixing_ratios: list = _f([0.0, 0.25, 0.5, 1.0, 2.0, 4.0], "Synthetic/real ratios of the mixed "
                             "protocol (seed 002).")
    filter_rho: Optional[float] = _f(None, "Keep a synthetic sample only if a real-trained classifier "
                                     "agrees with confidence >= rho (seed 001: 0.9); null: no filter.",
                                     minimum=0.0, maximum=1.0)
    on_the_fly: bool = _f(False, "Draw fresh samples from the generators every epoch, one member per "
                          "batch (seed 001), instead of training on the fixed shards.")
    mixing: bool = _f(False, "Also run the mixed real + synthetic protocol over eval.mixing_ratios.")
    metrics: list = _f([], "Sample-quality metrics computed per T (and per class): fid, kid "
                       "(Inception features, need eval.inception_weights), domain_fd (Frechet distance "
                       "in a real-trained classifier's features, offline), prdc (precision/recall/"
                       "density/coverage in those features), msssim (intra-class diversity), "
                       "classifier_score (seed 003), pca (seed 003's PCA baseline scored the same way).")
    inception_weights: Optional[str] = _f(None, "Local path of the standard FID Inception weights "
                                          "(torch-fidelity's weights-inception-2015-12-05-6726825d.pth, "
                                          "from its GitHub releases); needed by fid and kid; never "
                                          "downloaded.")
    metric_samples: int = _f(2000, "Samples per class (at most) used by the sample-quality metrics.",
                             minimum=2)
    tsne_points: int = _f(50, "Real and synthetic samples per class (at most, each) in the report's "
                          "t-SNE map (seed 001 Figure 1, plots/tsne.png; images only); 0 leaves it out.",
                          minimum=0)
    seed: int = _f(0, "Seed of the first classifier; repeat r uses seed + r.", minimum=0)
    pack_size: Optional[int] = _f(None, "Downstream classifiers trained together as one packed, "
                                  "vectorised model (raygan.classifiers.pack; simplecnn and mlp), each "
                                  "with its own seed, initial weights, data order, dropout masks and "
                                  "epoch chosen on validation, so each is its solo run up to float "
                                  "rounding. 1 trains them one after another; null (auto): as many as "
                                  "fit 512 MiB of activations, and as Ray tasks no more than spreads "
                                  "them over the cluster's task slots. resnet18 always trains alone "
                                  "(eval/evaluation.json says why).", minimum=1)


@dataclass(frozen=True)
class SweepConfig:
    lr: list = _f([1e-3], "Classifier learning rates to try (grid search over every list).")
    batch_size: list = _f([64], "Classifier batch sizes to try.")
    weight_decay: list = _f([0.0], "Classifier weight decays to try.")
    epochs: list = _f([20], "Classifier epochs to try (ASHA may stop a trial earlier).")
    arch: list = _f(["simplecnn"], "Classifier architectures to try (simplecnn, resnet18, mlp).")
    mixing_ratio: list = _f([1.0], "Synthetic/real ratios to try: real + ratio x synthetic (seed 002).")
    members: list = _f([], "Ensemble sizes T to try (first T members); empty means ensemble.members.")
    synthetic_only: bool = _f(False, "Train on synthetic data alone (TSTR) instead of real + ratio x "
                              "synthetic; mixing_ratio is then ignored.")
    protocols: list = _f([], "Classifier-protocol cells to try (seed 001 Table 1), each {name, on_the_fly, "
                         "augment, filter_rho, truncation} (a key left out is off; raygan.config."
                         "protocol_cells); needs synthetic_only; empty: eval.augment on the fixed set.")
    num_samples: int = _f(1, "Repeats of the grid (Tune's num_samples).", minimum=1)
    repeats: int = _f(1, "Classifiers each trial trains, each with its own seed, as one pack where the "
                      "arch packs (raygan.classifiers.pack; resnet18 one after another); the trial reports "
                      "their mean every epoch. Trial r's classifiers are seeded eval.seed + r x repeats + "
                      "j, so no two trials share one.", minimum=1)
    max_concurrent: int = _f(2, "Trials running at once.", minimum=1)
    cpus_per_trial: float = _f(1.0, "CPUs per trial.", minimum=0.0, exclusive_min=True)
    gpus_per_trial: float = _f(0.0, "GPUs per trial; fractions share a GPU (0.25: four trials).",
                               minimum=0.0)
    grace_period: int = _f(3, "ASHA: epochs every trial runs before it can be stopped.", minimum=1)
    trainer_min_rows: Optional[int] = _f(None, "Training-set size (rows) from which a trial trains its "
                                         "classifier as a Ray Train TorchTrainer of sweep.trainer_workers "
                                         "workers that read the synthetic shards with Ray Data "
                                         "(raygan.cluster.sweep_trainer); smaller sets, and sets regenerated "
                                         "from the generators, train inside the Tune trial; null: every "
                                         "trial trains inside its Tune trial.", minimum=1)
    trainer_workers: int = _f(2, "Workers of a trial that trains as a TorchTrainer (sweep.trainer_min_rows); "
                              "each asks for sweep.cpus_per_trial and sweep.gpus_per_trial and trains on "
                              "batch_size / trainer_workers rows of every step (DistributedDataParallel).",
                              minimum=1)
    name: str = _f("sweep", "Tune experiment name; its storage is <run>/tune/<name>; a rerun with the "
                   "same name resumes it.")
    target: str = _f("classifier", "What the sweep searches: classifier (the downstream classifier "
                     "over a trained run: the lists above) or gan (GAN/train settings of sweep.gan_space; "
                     "each trial trains its own small ensemble and is scored on the real validation "
                     "split).", choices=("classifier", "gan"))
    gan_space: dict = _f({}, "sweep.target=gan: {dotted key: values}, e.g. {gan.width: [8, 16]}; a list "
                         "is a grid, {choice: [...]}, {uniform: [lo, hi]}, {loguniform: [lo, hi]}, "
                         "{randint: [lo, hi]} (whole numbers, hi included) are sampled sweep.num_samples "
                         "times (raygan.config.gan_space.SPACE_KEYS lists the keys).")
    gan_rungs: int = _f(1, "sweep.target=gan: a trial trains its GAN steps (train: steps) in this many "
                        "equal chunks and reports after each (ASHA stops weak trials at a rung; its time "
                        "is GAN steps).",
                        minimum=1)


@dataclass(frozen=True)
class GridEvalConfig:
    gans: int = _f(25, "GANs trained for the Table 1 bootstrap (Supplement A: 25).", minimum=1)
    points_per_gan: int = _f(125_000, "Points drawn from each GAN (Supplement A: 125K).", minimum=1)
    eval_points: int = _f(2500, "Points per evaluated set (Supplement A: 2,500).", minimum=1)
    max_ensemble: int = _f(5, "Largest ensemble size T in the table (EnsGAN-T).", minimum=1)
    repeats: int = _f(1000, "Bootstrap repeats per T (Supplement A: 1,000).", minimum=1)


@dataclass(frozen=True)
class AuditConfig:
    enabled: bool = _f(True, "Run the memorisation audit (raygan audit) as a step of the pipeline job, "
                       "after evaluation; image datasets only (points: not applicable).")
    holdout: str = _f("test", "Real split never used in training that gives the reference distances: "
                      "test, val, or val+test (both: twice the reference images, a sharper 1st "
                      "percentile for small classes; no GAN sees either split).",
                      choices=("test", "val", "val+test"))
    spaces: list = _f(["pixel", "domain"], "Where nearest neighbours are searched: pixel (mean squared "
                      "difference, seed 000) and domain (mean squared difference of the features of a "
                      "classifier trained on the real training split, raygan.metrics.domain). "
                      "Near-duplicates and the figure need pixel.")
    chunk_size: int = _f(2048, "Rows per block of the exhaustive distance search (memory is "
                         "chunk_size^2, never N x M).", minimum=1)
    max_synthetic_per_class: Optional[int] = _f(None, "Audit at most this many synthetic samples per "
                                                "class and member; null audits them all.", minimum=1)
    near_duplicate_mse: float = _f(1e-3, "A synthetic image whose pixel MSE to a training image (on the "
                                   "[-1, 1] scale) is below this is a near-duplicate.", minimum=0.0)
    warn_fraction_p1: float = _f(0.05, "Verdict warn when, in any audited space, more than this fraction "
                                 "of a class's synthetic samples is closer to a training image than "
                                 "the holdout's 1st percentile (about 0.01 when nothing is copied); "
                                 "with a small holdout the limit rises to the fraction a set that "
                                 "copies nothing exceeds in 1 audit of 100.",
                                 minimum=0.0, maximum=1.0)
    warn_near_duplicates: int = _f(0, "Verdict warn when a class has more near-duplicates than this.",
                                   minimum=0)
    warn_flat_duplicates: bool = _f(False, "Count towards warn_near_duplicates the near-duplicates of a flat "
                                    "training image: one within near_duplicate_mse of a constant image "
                                    "(its pixel variance below it), such as a blank background tile or "
                                    "a black frame. Off: they are listed and noted, but not a reason to "
                                    "warn: a copy of a flat image reveals one grey level, not a record.")
    pairs_in_figure: int = _f(8, "Closest (real, synthetic) pairs shown per ensemble size / step.",
                              minimum=1)
