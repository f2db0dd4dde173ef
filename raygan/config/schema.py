"""Typed, frozen run configuration: defaults, YAML deltas, dotted overrides, strict validation.

Every field has a documented default (``doc`` in its metadata). A YAML file holds only what differs
from the defaults; ``--set section.key=value`` overrides apply on top. Unknown keys, wrong types and
impossible values raise :class:`ConfigError` naming the key and what is allowed, before any work starts.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import yaml

from raygan.config.build import build_config
from raygan.config.datasets import MEDMNIST_FLAGS, MEDMNIST_SIZES
from raygan.config.families import FAMILY_NAMES
from raygan.config.fields import ConfigError, _f  # noqa: F401  (ConfigError is public here too)
from raygan.config.schema_eval import AuditConfig, EvalConfig, GridEvalConfig, SweepConfig


@dataclass(frozen=True)
class DataConfig:
    name: str = _f("digits", "Real dataset: grid2d (seed 000 Supplement A), digits (scikit-learn's "
                   "bundled 8x8 digits), mnist, fashion_mnist, cifar10, svhn (torchvision files under "
                   "data.root), imagefolder (data.root/<class>/*.png|jpg), parquet (data.root: a "
                   "parquet file or folder with image bytes + label, raygan's shards included) or "
                   "medmnist (a MedMNIST .npz under data.root, see data.medmnist_flag); lfw_subset and "
                   "skimage_patches are scikit-image's bundled data (the bench extra; raygan.data.skimage_sets).",
                   choices=("grid2d", "digits", "mnist", "fashion_mnist", "cifar10", "svhn",
                            "imagefolder", "parquet", "medmnist", "lfw_subset", "skimage_patches"))
    root: Optional[str] = _f(None, "Where the dataset's files are: the torchvision root folder (mnist, "
                             "fashion_mnist, cifar10, svhn), the class-per-sub-folder image folder, "
                             "the parquet file/folder (any pyarrow filesystem URI) or the folder "
                             "holding MedMNIST's <flag>.npz / <flag>_<size>.npz.")
    medmnist_flag: Optional[str] = _f(None, "data.name=medmnist: which 2D MedMNIST dataset (its file "
                                      "is data.root/<flag>.npz at 28 px, <flag>_<size>.npz at "
                                      "data.medmnist_size); its own train/val/test splits are used. "
                                      "chestmnist is multi-label and refused.",
                                      choices=(None, *MEDMNIST_FLAGS))
    medmnist_size: int = _f(28, "data.name=medmnist: which of MedMNIST's published sizes to read "
                            "(data.image_size still resizes after).", choices=MEDMNIST_SIZES)
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
                             "(never seen by a GAN); medmnist uses its official validation split.", minimum=0.0, maximum=0.5)
    test_fraction: float = _f(0.15, "Stratified fraction held out for testing (never seen by a GAN); "
                              "mnist/fashion_mnist/cifar10/svhn/medmnist use their official test split "
                              "instead.",
                              minimum=0.0, maximum=0.5)
    split_seed: int = _f(0, "Seed of the train/validation/test split.", minimum=0)
    train_per_class: Optional[int] = _f(None, "Subsample each source label's training split to this "
                                        "many examples (seed 002 uses 250-2000; under a grouping a class "
                                        "gets this per label it holds); null keeps all.", minimum=1)
    canaries: int = _f(0, "Planted canaries per class and kind (the positive control of the audit's "
                       "membership-inference attacks, raygan.data.canaries): this many training images "
                       "duplicated data.canary_copies times, and this many inverted training images "
                       "added once; images only; 0: none. A run with canaries audits the pipeline: "
                       "release one without.", minimum=0)
    canary_copies: int = _f(5, "How many times each duplicated canary is in the training split.",
                            minimum=2)
    group_column: Optional[str] = _f(None, "The column naming each record's group (a patient id), read for "
                                     "privacy.unit=group: a parquet column; for an image folder, folder (the "
                                     "folder under each class folder) or a column of data.root/groups.csv. "
                                     "Every record needs a value.")
    grid_points: int = _f(100_000, "Training points drawn from the 25-Gaussian grid.", minimum=1)
    grid_sigma: float = _f(0.05, "Standard deviation of each grid Gaussian.", minimum=0.0,
                           exclusive_min=True)


@dataclass(frozen=True)
class GANConfig:
    family: str = _f("dcgan", "GAN architecture: mlp2d (seed 000 Supplement A), dcgan (convolutional, "
                     "8-128 px), ccgan (seed 003's class-conditional DCGAN: one model per member for "
                     "all classes), pggan (progressively growing GAN, seed 000, up to 128 px) or fc "
                     "(seed 002's fully connected GAN) or biggan (Brock et al.'s CIFAR BigGAN, class-"
                     "conditional like ccgan, 8-128 px; never packed: raygan.gan.pack's grouped layers "
                     "have no form of spectral norm's power iteration, conditional batch norm or attention).",
                     choices=FAMILY_NAMES)
    g_norm: str = _f("batch", "Normalisation in the DCGAN/CCGAN generator: batch (DCGAN), layer "
                     "(seed 004's LayerNorm generator) or vbn (seed 003's virtual batch norm, Salimans "
                     "et al.: statistics of a fixed reference batch plus the sample itself, so no "
                     "sample depends on the rest of its batch).", choices=("batch", "layer", "vbn"))
    d_depth: int = _f(1, "Seed 003's discriminator depth D (dcgan, ccgan): D - 1 extra stride-1 3x3 "
                      "conv + norm + LeakyReLU blocks after each downsampling stage; 1 is DCGAN's "
                      "discriminator exactly.", minimum=1)
    attention_resolution: Optional[int] = _f(None, "biggan: resolution of the one self-attention block "
                                             "(Zhang et al., SAGAN) in G and D, e.g. 16 at 32 px (a power "
                                             "of two, 4 to half the image size); null: none.", minimum=4)
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
                   choices=("nonsaturating", "minimax", "hinge"))
    real_label: float = _f(1.0, "Target of real samples in the discriminator loss; 0.9 is seed 002's "
                           "one-sided label smoothing.", minimum=0.5, maximum=1.0)
    lr_g: float = _f(2e-4, "Generator learning rate (Adam).", minimum=0.0, exclusive_min=True)
    lr_d: float = _f(2e-4, "Discriminator learning rate (Adam).", minimum=0.0, exclusive_min=True)
    beta1: float = _f(0.5, "Adam beta1 for both networks (Adam needs it below 1).", minimum=0.0,
                      maximum=1.0, exclusive_max=True)
    beta2: float = _f(0.999, "Adam beta2 for both networks (Adam needs it below 1).", minimum=0.0,
                      maximum=1.0, exclusive_max=True)
    g_steps_per_d_step: int = _f(1, "Generator updates per discriminator update (seed 002 uses 2).",
                                 minimum=1)
    ema_decay: float = _f(0.0, "Exponential moving average of the generator's weights, used for "
                          "sampling (Karras et al.; Yazici et al., \"The unusual effectiveness of averaging "
                          "in GAN training\"): after every generator step ema = decay * ema + (1 - decay) "
                          "* weights, buffers copied; 0 is off (sample the raw generator); must be < 1. "
                          "The average starts from the initial weights, whose share after S steps is "
                          "decay^S: pick decay so that decay^S is near 0 for the run's S (0.995 at 2,000 steps leaves 4e-5; "
                          "0.999 would leave 14 %).", minimum=0.0)
    r1_gamma: float = _f(0.0, "R1 gradient penalty (Mescheder, Geiger and Nowozin, \"Which training "
                         "methods for GANs do actually converge?\"): the discriminator loss gains "
                         "gamma / 2 * E ||grad_x D(x_real)||^2 every step; 0 is off.", minimum=0.0)
    diffaugment: str = _f("", "DiffAugment (Zhao et al. 2020): comma-separated transforms applied to the "
                          "real and the fake images every time D sees them, e.g. \"translation,cutout,"
                          "color\" (the paper's choice with limited data); \"\" is off. Convolutional "
                          "families only.")
    pacgan: int = _f(1, "PacGAN packing (Lin et al. 2018): the discriminator judges this many samples at "
                     "once (all real or all fake, concatenated along channels) and gives one logit per "
                     "pack; 1 is off. train.batch_size must be a multiple of it. Not biggan.", minimum=1)
    minibatch_std: int = _f(0, "Minibatch standard-deviation layer (Karras et al. 2018) before D's last "
                            "layer, over groups of this many samples (of PacGAN packs when gan.pacgan > 1), "
                            "which must divide D's batch; 0 is off, 4 is StyleGAN's. Not pggan (it always "
                            "has one) or biggan.", minimum=0)


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
    samples_ratio: Optional[float] = _f(None, "Synthetic samples per class as a multiple of N, the "
                                        "class's real training size: N_g = round(ratio * N) (e.g. 2.5); "
                                        "null keeps samples_per_class's rule; not with samples_per_class.",
                                        minimum=0.0, exclusive_min=True)
    collapse_threshold: float = _f(0.1, "A member whose samples' mean pairwise distance is below this "
                                   "fraction of its class's real images' is collapsed (raygan.metrics."
                                   "collapse; 0 turns the check off). A conditional member scores its lowest "
                                   "class; members trained under privacy are not measured.", minimum=0.0)
    on_collapse: str = _f("warn", "What a collapsed member gets: warn (kept; a log warning, flagged in "
                          "the manifest and the report), drop (left out of its class's mixture like a "
                          "diverged member; synthesis renormalises the others' weights) or retrain "
                          "(trained again from scratch with its next seed, as a diverged member is, up to "
                          "train.divergence_retries times, then left out).",
                          choices=("warn", "drop", "retrain"))


@dataclass(frozen=True)
class PrivacyConfig:
    epsilon: Optional[float] = _f(None, "Target epsilon of (epsilon, delta)-differential privacy for the "
                                  "whole released set (every class, every member): DP-SGD on each "
                                  "member's discriminator, its noise solved from this target before any "
                                  "training (raygan.privacy; docs/privacy.md); must be > 0; null: "
                                  "privacy off.")
    delta: Optional[float] = _f(None, "Target delta; null: 1 / (10 N), N the number of private training "
                                "records (every class's training split); a delta of 1/N or more is "
                                "refused (it allows releasing a record outright).")
    max_grad_norm: float = _f(1.0, "C: each real record's gradient of the discriminator's loss is "
                              "clipped to this L2 norm before the noise N(0, sigma^2 C^2) is added to "
                              "their sum (Abadi et al., \"Deep learning with differential privacy\").",
                              minimum=0.0, exclusive_min=True)
    accountant: str = _f("prv", "Opacus accountant that solves the noise and composes the members: prv "
                         "(Gopi et al.'s privacy random variables: tighter) or rdp (Mironov's Renyi "
                         "DP: faster, looser).", choices=("prv", "rdp"))
    partition: str = _f("shared", "How a class's T members see its records: shared (every member "
                        "trains on all of them: the T members compose, so each gets a share of the "
                        "budget) or disjoint (each record goes to exactly one member by a seeded rule: "
                        "members compose in parallel, each with the whole budget on N/T records).",
                        choices=("shared", "disjoint"))
    unit: str = _f("record", "What one privacy unit is: record (one training image; add/remove "
                   "adjacency: a dataset with or without it) or group (every training image of one "
                   "value of data.group_column, e.g. one patient: epsilon holds for a whole group, by "
                   "group privacy over its largest group's k records; docs/privacy.md).",
                   choices=("record", "group"))
    d_steps: int = _f(1, "DP-SGD steps of the discriminator per generator update, each on its own "
                      "Poisson batch and fresh fakes, each counted by the accountant (so each member's "
                      "noise is solved for d_steps times as many steps): the lever Bie, Kamath and Zhang "
                      "(\"Private GANs, revisited\") show for DP GANs.", minimum=1)
    d_norm: str = _f("group", "What replaces batch norm in the discriminator when privacy is on "
                     "(batch statistics mix the records of a batch, so no record's gradient would be "
                     "its own): group, GroupNorm(min(32, C), C), Opacus's replacement.",
                     choices=("group",))


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
    workers_per_member: int = _f(1, "Processes that train one member together (data parallel): above "
                                 "1 each member is a Ray Train TorchTrainer group of this many workers "
                                 "(DistributedDataParallel, gloo on CPUs, NCCL on GPUs; batch norms "
                                 "synchronised), each on train.batch_size / workers_per_member of every "
                                 "step's batch and asking for cluster.gpus_per_member (a whole GPU or 0) "
                                 "and cluster.cpus_per_member; for members too big for one GPU. 1 is one "
                                 "Ray task per member (or pack).", minimum=1)
    members_per_task: Optional[int] = _f(None, "Pack size: members trained together as one packed, "
                                         "vectorised model in one Ray task (ensemble.method=independent "
                                         "or ccgan, no recursive rounds; pggan, biggan, boosting and "
                                         "recursive training keep one member per task). A "
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
class OutputConfig:
    root: str = _f("runs", "Folder holding <experiment>/<run>/ run folders.")
    experiment: str = _f("default", "Experiment name (the middle folder).")
    run: str = _f("run", "Run name; a rerun with the same name resumes and skips finished members.")
    sample_grid: int = _f(64, "Images in each member's sample grid.", minimum=1)


# The sections of a run's config, in the order config.yaml lists them.
SECTIONS: dict[str, type] = {
    "data": DataConfig, "gan": GANConfig, "train": TrainConfig, "ensemble": EnsembleConfig,
    "privacy": PrivacyConfig, "boosting": BoostingConfig, "synth": SynthConfig, "cluster": ClusterConfig, "tracking": TrackingConfig,
    "eval": EvalConfig, "sweep": SweepConfig, "grid_eval": GridEvalConfig, "audit": AuditConfig,
    "output": OutputConfig}
for _cls in (EvalConfig, SweepConfig, GridEvalConfig, AuditConfig):
    _cls.__module__ = __name__  # pickled configs (Ray, Tune) keep naming this module


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
        return build_config(type(self), merged)


# One field per section (cfg.data, cfg.gan, ...), each defaulting to its section's defaults; frozen.
Config = dataclasses.make_dataclass(
    "Config", [(name, cls, field(default_factory=cls)) for name, cls in SECTIONS.items()],
    bases=(_ConfigMethods,), frozen=True)
Config.__module__ = __name__  # pickled configs (Ray, Tune) name this module
Config.__doc__ = "A whole run configuration: one frozen section per entry of SECTIONS."


_SECTIONS = SECTIONS


def from_dict(raw: dict) -> Config:
    """Build and validate a Config from a (possibly partial) nested dict."""
    return build_config(Config, raw)


def _section_class(name: str):
    """The dataclass of a config section, e.g. "gan" -> GANConfig."""
    return SECTIONS[name]
