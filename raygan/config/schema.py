"""Typed, frozen run configuration: defaults, YAML deltas, dotted overrides, strict validation.

Every field has a documented default (``doc`` in its metadata). A YAML file holds only what differs
from the defaults; ``--set section.key=value`` overrides apply on top. Unknown keys, wrong types and
impossible values raise :class:`ConfigError` naming the key and what is allowed, before any work starts.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml


class ConfigError(ValueError):
    """A configuration problem, raised before any work starts; the message names the key and the fix."""


def _f(default: Any, doc: str, *, choices: tuple | None = None, minimum: float | None = None,
       maximum: float | None = None, exclusive_min: bool = False):
    """A dataclass field carrying its documentation and its allowed values."""
    meta = {"doc": doc, "choices": choices, "minimum": minimum, "maximum": maximum,
            "exclusive_min": exclusive_min}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    name: str = _f("digits", "Real dataset: grid2d (seed 000 Supplement A), digits (scikit-learn's "
                   "bundled 8x8 digits), mnist, fashion_mnist, cifar10, svhn (torchvision files under "
                   "data.root), imagefolder (data.root/<class>/*.png|jpg) or parquet (data.root: a "
                   "parquet file or folder with image bytes + label, raygan's shards included).",
                   choices=("grid2d", "digits", "mnist", "fashion_mnist", "cifar10", "svhn",
                            "imagefolder", "parquet"))
    root: Optional[str] = _f(None, "Where the dataset's files are: the torchvision root folder (mnist, "
                             "fashion_mnist, cifar10, svhn), the class-per-sub-folder image folder, or "
                             "the parquet file/folder. Any pyarrow filesystem URI for parquet.")
    download: bool = _f(False, "Let torchvision download mnist/fashion_mnist/cifar10/svhn into data.root "
                        "when the files are missing (otherwise a missing file is an error).")
    image_size: Optional[int] = _f(None, "Resize images to this square size (e.g. 128 for pathology "
                                   "patches, 64 for a DCGAN-64); null keeps the native size.", minimum=4)
    channels: Optional[int] = _f(None, "Force 1 (grayscale) or 3 (RGB) channels; null keeps what the "
                                 "files hold (image folders: RGB unless every file is grey).",
                                 choices=(None, 1, 3))
    grouping: Optional[str] = _f(None, "Named class grouping: II = seed 000's two-class partition "
                                 "{0-4} vs {5-9} (SVHN-II, MNIST-II; for CIFAR-II {airplane, automobile, "
                                 "bird, cat, deer} vs {dog, frog, horse, ship, truck}); null keeps one "
                                 "class per label.", choices=(None, "II"))
    classes: Optional[dict] = _f(None, "Explicit grouping {class name: [source labels]}; overrides "
                                 "nothing else and cannot be combined with grouping.")
    val_fraction: float = _f(0.15, "Stratified fraction of the real data held out for validation "
                             "(never seen by a GAN).", minimum=0.0, maximum=0.5)
    test_fraction: float = _f(0.15, "Stratified fraction held out for testing (never seen by a GAN); "
                              "mnist/fashion_mnist/cifar10/svhn use their official test split instead.",
                              minimum=0.0, maximum=0.5)
    split_seed: int = _f(0, "Seed of the train/validation/test split.", minimum=0)
    train_per_class: Optional[int] = _f(None, "Subsample each source label's training split to this "
                                        "many examples (seed 002 uses 250-2000; under a grouping a class "
                                        "gets this per label it holds); null keeps all.", minimum=1)
    grid_points: int = _f(100_000, "Training points drawn from the 25-Gaussian grid.", minimum=1)
    grid_sigma: float = _f(0.05, "Standard deviation of each grid Gaussian.", minimum=0.0,
                           exclusive_min=True)


@dataclass(frozen=True)
class GANConfig:
    family: str = _f("dcgan", "GAN architecture: mlp2d (seed 000 Supplement A), dcgan (convolutional, "
                     "8-128 px), ccgan (seed 003's class-conditional DCGAN: one model per member for "
                     "all classes), pggan (progressively growing GAN, seed 000, up to 128 px) or fc "
                     "(seed 002's fully connected GAN).",
                     choices=("mlp2d", "dcgan", "ccgan", "pggan", "fc"))
    g_norm: str = _f("batch", "Normalisation in the DCGAN/CCGAN generator: batch (DCGAN), layer "
                     "(seed 004's LayerNorm generator) or vbn (seed 003's virtual batch norm, Salimans "
                     "et al.: statistics of a fixed reference batch plus the sample itself, so no "
                     "sample depends on the rest of its batch).", choices=("batch", "layer", "vbn"))
    d_depth: int = _f(1, "Seed 003's discriminator depth D (dcgan, ccgan): D - 1 extra stride-1 3x3 "
                      "conv + norm + LeakyReLU blocks after each downsampling stage; 1 is DCGAN's "
                      "discriminator exactly.", minimum=1)
    pg_start_size: int = _f(4, "PG-GAN: resolution training starts at; it doubles up to the image "
                            "size.", minimum=4)
    pg_fade_fraction: float = _f(0.5, "PG-GAN: fraction of each resolution's steps spent fading the new "
                                 "layers in (the rest stabilises).", minimum=0.0, maximum=1.0)
    z_dim: int = _f(100, "Latent dimension (Supplement A uses 2 for the grid).", minimum=1)
    width: int = _f(64, "DCGAN base channel count (the widest layer has width * 2^(stages-1)).",
                    minimum=1)
    alpha: float = _f(4.0, "Width multiplier of the fc GAN (seed 002: alpha in 1, 2, 4, 6).",
                      minimum=0.0, exclusive_min=True)
    dropout: float = _f(0.1, "Dropout of the fc GAN (seed 002: 0.1).", minimum=0.0, maximum=0.9)
    loss: str = _f("nonsaturating", "Adversarial loss (see raygan.gan.losses.LOSSES).",
                   choices=("nonsaturating", "minimax"))
    real_label: float = _f(1.0, "Target of real samples in the discriminator loss; 0.9 is seed 002's "
                           "one-sided label smoothing.", minimum=0.5, maximum=1.0)
    lr_g: float = _f(2e-4, "Generator learning rate (Adam).", minimum=0.0, exclusive_min=True)
    lr_d: float = _f(2e-4, "Discriminator learning rate (Adam).", minimum=0.0, exclusive_min=True)
    beta1: float = _f(0.5, "Adam beta1 for both networks.", minimum=0.0, maximum=1.0)
    beta2: float = _f(0.999, "Adam beta2 for both networks.", minimum=0.0, maximum=1.0)
    g_steps_per_d_step: int = _f(1, "Generator updates per discriminator update (seed 002 uses 2).",
                                 minimum=1)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = _f(2000, "Discriminator updates per GAN member.", minimum=1)
    batch_size: int = _f(64, "Minibatch size (real and fake each); at most the size of a class.",
                         minimum=1)
    checkpoint_every: int = _f(500, "Steps between atomic checkpoints (a crash loses at most this).",
                               minimum=1)
    log_every: int = _f(100, "Steps between loss summaries and divergence checks.", minimum=1)
    seed: int = _f(0, "Base seed; each (class, member) derives its own from it.", minimum=0)
    device: str = _f("auto", "Where members train: auto (cuda if available), cpu or cuda.",
                     choices=("auto", "cpu", "cuda"))
    recursive_rounds: int = _f(0, "Seed 002's recursive training: after the first training, this many "
                               "more rounds each retrain on the real class plus recursive_fraction "
                               "synthetic samples from the previous round's generator.", minimum=0)
    recursive_fraction: float = _f(0.1, "Synthetic share added per recursive round, relative to the "
                                   "real class size (seed 002: 10 %).", minimum=0.0, maximum=10.0,
                                   exclusive_min=True)
    num_threads: Optional[int] = _f(None, "torch CPU threads per member; null keeps torch's default.",
                                    minimum=1)
    max_abs_loss: float = _f(1e4, "Divergence bound: a member whose d_loss or g_loss is NaN, inf or past "
                             "this in absolute value (the BCE losses of a training GAN stay far "
                             "below) has diverged.", minimum=0.0, exclusive_min=True)
    divergence_retries: int = _f(2, "Times a diverged member is trained again from scratch with its next "
                                 "seed (raygan.seeds.member_retry) before it is given up; a class left "
                                 "with no member fails the job.", minimum=0)
    # GPU speed levers (raygan.gan.levers), all off by default: `raygan bench gpu` measures each.
    precision: str = _f("fp32", "Arithmetic of the forward passes: fp32, or bf16 (torch.autocast with "
                        "bfloat16; weights, Adam state, checkpoints and logged losses stay fp32).",
                        choices=("fp32", "bf16"))
    channels_last: bool = _f(False, "Convolution weights (a pack) or modules (a member alone) in the "
                             "channels-last memory format; dcgan, ccgan and pggan only.")
    compile: bool = _f(False, "torch.compile the packed forward (alone: G and D); needs a C++ compiler "
                       "on CPU, Triton on CUDA; the first step pays the compilation; not pggan.")
    cuda_graphs: bool = _f(False, "Capture a pack's whole training step in a CUDA graph and replay it "
                           "(CUDA only; packs only, so not pggan).")


@dataclass(frozen=True)
class EnsembleConfig:
    method: str = _f("independent", "How members are made: independent (bagging, seed 000's EnsGAN), "
                     "adagan (boosting, Tolstikhin et al.'s AdaGAN) or reweight (seed 001's Algorithm 1).",
                     choices=("independent", "adagan", "reweight"))
    members: int = _f(5, "Members per class, T (T_max: any first T <= T_max are usable later).",
                      minimum=1)
    weights: Optional[list] = _f(None, "Mixture weights p_t, one per member, summing to 1; null means "
                                 "uniform 1/T.")
    samples_per_class: Optional[int] = _f(None, "Synthetic samples per class N_g; null means N_g = N, "
                                          "the class's real training size.", minimum=1)


@dataclass(frozen=True)
class BoostingConfig:
    rule: str = _f("theory_star", "AdaGAN data-weight rule: theory_star (Tolstikhin et al., "
                   "Theorem 1), theory_dagger (Theorem 2) or topk.",
                   choices=("theory_star", "theory_dagger", "topk"))
    beta_schedule: str = _f("uniform", "Mixture weight of the new member: uniform (beta_t = 1/t) or "
                            "constant (beta_t = beta_constant for t > 1).", choices=("uniform", "constant"))
    beta_constant: float = _f(0.5, "beta_t for beta_schedule=constant.", minimum=0.0, maximum=1.0,
                              exclusive_min=True)
    topk_fraction: float = _f(0.5, "Fraction of points kept (uniform weight) by rule=topk.",
                              minimum=0.0, maximum=1.0, exclusive_min=True)
    classifier_epochs: int = _f(4, "Epochs of the boosting classifier (seed 000 Supplement B: 4).",
                                minimum=1)
    reweight_transform: str = _f("A", "Seed 001 Algorithm 1 weight transform: A (threshold at mu), "
                                 "A_sigma (threshold at mu + sigma), B (sigmoid), C (identity).",
                                 choices=("A", "A_sigma", "B", "C"))


@dataclass(frozen=True)
class ClusterConfig:
    address: Optional[str] = _f(None, "Ray cluster to join (else RAY_ADDRESS; else a local Ray sized "
                                "to this machine).")
    gpus_per_member: Optional[float] = _f(None, "GPUs per training task (one (class, member), or a pack "
                                          "of cluster.members_per_task); 0.25 puts four tasks on a "
                                          "GPU; null means 1 if the cluster has GPUs, else 0.",
                                          minimum=0.0)
    cpus_per_member: float = _f(1.0, "CPUs per training task, a member or a pack (also its torch "
                                "thread count).",
                                minimum=0.0, exclusive_min=True)
    max_retries: int = _f(3, "Retries of a member task whose worker or node died; a retry resumes "
                          "from the member's last checkpoint.", minimum=0)
    members_per_task: Optional[int] = _f(None, "Pack size: members trained together as one packed, "
                                         "vectorised model in one Ray task (ensemble.method=independent "
                                         "with a per-class family and no recursive rounds; ccgan, pggan, "
                                         "boosting and recursive training keep one member per task). A "
                                         "pack asks for what one member did (cluster.gpus_per_member, "
                                         "cluster.cpus_per_member). 1 is one member per task; null "
                                         "(auto) picks from the device: on CPUs the pack size `raygan "
                                         "bench pack` measured fastest, on a GPU as many as fit in 80% "
                                         "of its free memory (a short probe); and no more than spreads "
                                         "the members over the task slots the cluster has now.",
                                         minimum=1)
    evaluate_as_task: Optional[bool] = _f(None, "Run the evaluation's units of work (each downstream "
                                          "classifier (T, repeat), each set's quality metrics) as Ray "
                                          "tasks with a member task's resources instead of one after "
                                          "another in the job's driver; null: when members use GPUs (a "
                                          "GPU cluster's head often has none).")
    num_cpus: Optional[int] = _f(None, "CPUs of a local Ray started by raygan; null means all.",
                                 minimum=1)
    wait_timeout_s: float = _f(600.0, "Seconds a job waits, before submitting any task, for an "
                               "autoscaler to add the GPUs cluster.gpus_per_member asks for (only on "
                               "a cluster whose autoscaler has GPU node types; a cluster with no GPU "
                               "and no such autoscaler is refused at once); then it fails with one "
                               "line.", minimum=0.0)
    gpu_hour_cost: Optional[float] = _f(None, "Price of one GPU-hour in USD (a GPU node's hourly "
                                        "price, e.g. on-demand g5.xlarge), used by raygan plan for the "
                                        "cost; null shows no cost.", minimum=0.0)


@dataclass(frozen=True)
class SynthConfig:
    chunk_size: int = _f(1024, "Samples generated per Ray Data block.", minimum=1)
    seed: int = _f(0, "Seed of synthesis; the same seed and members give the same shards.", minimum=0)
    truncation: Optional[float] = _f(None, "Truncation trick (seed 001): latents outside +-tau are "
                                     "resampled; null draws plain N(0, I).", minimum=0.0,
                                     exclusive_min=True)


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool = _f(True, "Log runs to MLflow (parent run per job, child run per member).")
    tracking_uri: Optional[str] = _f(None, "MLflow tracking URI; null means MLFLOW_TRACKING_URI, else "
                                     "sqlite:///<output.root>/mlflow.db.")


@dataclass(frozen=True)
class EvalConfig:
    arch: str = _f("simplecnn", "Downstream classifier: simplecnn (seed 000 Supplement B), resnet18 "
                   "(3x3 stem, no max-pool) or mlp (seed 002).", choices=("simplecnn", "resnet18", "mlp"))
    epochs: int = _f(20, "Classifier epochs; the epoch is picked on the real validation split.",
                     minimum=1)
    lr: float = _f(1e-3, "Classifier learning rate (Adam).", minimum=0.0, exclusive_min=True)
    batch_size: int = _f(64, "Classifier minibatch size.", minimum=2)
    weight_decay: float = _f(0.0, "Classifier weight decay.", minimum=0.0)
    augment: str = _f("none", "Augmentation of training batches: none, flip_crop (seed 001) or "
                      "pathology (seed 000 Supplement B).", choices=("none", "flip_crop", "pathology"))
    repeats: int = _f(10, "Classifier trainings per setting (R); results are mean +- std.", minimum=1)
    max_ensemble: Optional[int] = _f(None, "Largest T of the ensemble-size curve; null means "
                                     "ensemble.members.", minimum=1)
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
    num_samples: int = _f(1, "Repeats of the grid (Tune's num_samples).", minimum=1)
    max_concurrent: int = _f(2, "Trials running at once.", minimum=1)
    cpus_per_trial: float = _f(1.0, "CPUs per trial.", minimum=0.0, exclusive_min=True)
    gpus_per_trial: float = _f(0.0, "GPUs per trial; fractions share a GPU (0.25: four trials).",
                               minimum=0.0)
    grace_period: int = _f(3, "ASHA: epochs every trial runs before it can be stopped.", minimum=1)
    name: str = _f("sweep", "Tune experiment name; its storage is <run>/tune/<name>; a rerun with the "
                   "same name resumes it.")
    target: str = _f("classifier", "What the sweep searches: classifier (the downstream classifier "
                     "over a trained run: the lists above) or gan (GAN/train settings of sweep.gan_space; "
                     "each trial trains its own small ensemble and is scored on the real validation "
                     "split).", choices=("classifier", "gan"))
    gan_space: dict = _f({}, "sweep.target=gan: {dotted key: values}, e.g. {gan.width: [8, 16]}; a list "
                         "is a grid, {choice: [...]}, {uniform: [lo, hi]}, {loguniform: [lo, hi]}, "
                         "{randint: [lo, hi]} (whole numbers, hi included) are sampled sweep.num_samples "
                         "times (raygan.evaluation.gan_trial.SPACE_KEYS lists the keys).")
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
    holdout: str = _f("test", "Real split never used in training that gives the reference distances "
                      "(test or val).", choices=("test", "val"))
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
    pairs_in_figure: int = _f(8, "Closest (real, synthetic) pairs shown per ensemble size / step.",
                              minimum=1)


@dataclass(frozen=True)
class OutputConfig:
    root: str = _f("runs", "Folder holding <experiment>/<run>/ run folders.")
    experiment: str = _f("default", "Experiment name (the middle folder).")
    run: str = _f("run", "Run name; a rerun with the same name resumes and skips finished members.")
    sample_grid: int = _f(64, "Images in each member's sample grid.", minimum=1)


# The sections of a run's config, in the order config.yaml lists them.
SECTIONS: dict[str, type] = {
    "data": DataConfig, "gan": GANConfig, "train": TrainConfig, "ensemble": EnsembleConfig,
    "boosting": BoostingConfig, "synth": SynthConfig, "cluster": ClusterConfig, "tracking": TrackingConfig,
    "eval": EvalConfig, "sweep": SweepConfig, "grid_eval": GridEvalConfig, "audit": AuditConfig,
    "output": OutputConfig}


class _ConfigMethods:
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The config as YAML with the credentials of every URI redacted (raygan.secrets): what is
        printed and saved as config.yaml. A run resumes from the command's own --config / --set (the
        real URIs), never from config.yaml; ``raygan audit RUN`` takes tracking.* again with --set."""
        from raygan.secrets import redact_tree

        return yaml.safe_dump(redact_tree(self.to_dict()), sort_keys=False)

    def replace(self, **sections: dict) -> "Config":
        """A copy with some fields changed: cfg.replace(train={"steps": 10})."""
        merged = self.to_dict()
        for section, values in sections.items():
            merged[section].update(values)
        from raygan.config.checks import from_dict  # checks import the schema
        return from_dict(merged)


# One field per section (cfg.data, cfg.gan, ...), each defaulting to its section's defaults; frozen.
Config = dataclasses.make_dataclass(
    "Config", [(name, cls, field(default_factory=cls)) for name, cls in SECTIONS.items()],
    bases=(_ConfigMethods,), frozen=True)
Config.__module__ = __name__  # pickled configs (Ray, Tune) name this module
Config.__doc__ = "A whole run configuration: one frozen section per entry of SECTIONS."


_SECTIONS = SECTIONS


def _section_class(name: str):
    """The dataclass of a config section, e.g. "gan" -> GANConfig."""
    return SECTIONS[name]
