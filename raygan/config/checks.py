"""The rules between a config's fields, run on every Config when it is built (raygan.config.build):
relations between sections, every list item, the output names, the class names, the speed levers
and the GAN search space, each a one-line ConfigError naming the key and the fix, before any work.

The config is the bottom layer (DESIGN.md 17): what a rule needs to know of a family, a dataset or a
lever is data in raygan.config (families, datasets, levers), never an import of the stage that runs it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raygan.config.datasets import POINT_DATASETS, image_size, is_points
from raygan.config.families import (
    CONDITIONAL,
    CONVOLUTIONAL,
    DCGAN_BLOCKS,
    DIFFAUGMENT_POLICIES,
    FAMILIES,
    biggan_attention_stage,
    biggan_up_blocks,
)
from raygan.config.fields import ConfigError
from raygan.config.gan_space import check_gan_space
from raygan.config.levers import check_lever_config
from raygan.config.names import check_config_names
from raygan.config.parallel import check_parallel_config, check_sweep_trainer
from raygan.config.privacy import check_privacy_config, why_dp_not_packable
from raygan.config.protocol_cells import protocol_cells

if TYPE_CHECKING:  # the schema builds through these checks, so they import it for annotations only
    from raygan.config.schema import Config


def why_not_packable(cfg: Config) -> str | None:
    """None when the members of ``cfg`` can be packed several to a task, else the reason (for messages).

    Boosting (adagan, reweight) packs the K class members of one step (its driver steps every class in
    lockstep); ccgan packs its conditional members (each one model for every class); recursive
    training changes each member's data between rounds.
    """
    family = FAMILIES[cfg.gan.family]
    if (why := why_dp_not_packable(cfg)) is not None:
        return why
    if cfg.cluster.workers_per_member > 1:
        return (f"cluster.workers_per_member={cfg.cluster.workers_per_member}: each member trains alone, "
                "as a data-parallel group")
    if not family.packable:
        return f"gan.family={cfg.gan.family} trains one member per task ({family.unpackable_because})"
    if cfg.train.recursive_rounds:
        return "train.recursive_rounds > 0 retrains each member on its own growing data"
    return None


def check_config(cfg: Config) -> None:
    """Every rule between fields of a Config whose fields each passed their own checks."""
    _check_relations(cfg)
    _check_list_items(cfg)
    _check_output_names(cfg)
    check_config_names(cfg)  # class names become folders (raygan.config.names)
    check_privacy_config(cfg)  # privacy.* (raygan.config.privacy)
    check_parallel_config(cfg)  # cluster.workers_per_member (raygan.config.parallel)
    check_sweep_trainer(cfg)  # sweep.trainer_min_rows (raygan.config.parallel)


# The audit's search spaces (raygan.audit.inputs.SPACES), here so that a bad name is refused at load.
AUDIT_SPACES = ("pixel", "domain")
_SWEEP_ARCHS = ("simplecnn", "resnet18", "mlp")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _whole(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_items(key: str, items: list, ok, want: str, *, empty: bool = False) -> None:
    """Every item of the list at ``key`` passes ``ok``; ``want`` says what an item must be."""
    if not items and not empty:
        raise ConfigError(f"{key} is empty; give at least one item ({want})")
    for i, item in enumerate(items):
        if not ok(item):
            raise ConfigError(f"{key}[{i}] = {item!r} is not allowed; every item must be {want}")


def _check_list_items(cfg: Config) -> None:
    """Every list item, and the cross-field rules that involve a list or a resource count."""
    e, s = cfg.eval, cfg.sweep
    _check_items("eval.mixing_ratios", e.mixing_ratios, lambda x: _number(x) and x >= 0,
                 "a number >= 0 (synthetic per real example)", empty=not e.mixing)
    _check_items("eval.metrics", e.metrics, lambda x: isinstance(x, str), "a metric name", empty=True)
    top = e.max_ensemble or cfg.ensemble.members
    bad = [T for T in e.ensemble_sizes if not isinstance(T, int) or isinstance(T, bool) or not 1 <= T <= top]
    if bad or len(set(e.ensemble_sizes)) != len(e.ensemble_sizes):
        raise ConfigError(f"eval.ensemble_sizes={e.ensemble_sizes}: each T must be a whole number in "
                          f"1..{top} (eval.max_ensemble or ensemble.members), given once; empty: all")
    if e.max_ensemble is not None and e.max_ensemble > cfg.ensemble.members:
        raise ConfigError(f"eval.max_ensemble={e.max_ensemble} is above ensemble.members="
                          f"{cfg.ensemble.members}; lower eval.max_ensemble (or null: all members)")
    _check_items("audit.spaces", cfg.audit.spaces, lambda x: x in AUDIT_SPACES,
                 f"one of {', '.join(AUDIT_SPACES)}")
    if len(set(cfg.audit.spaces)) != len(cfg.audit.spaces):
        raise ConfigError(f"audit.spaces {cfg.audit.spaces} names a space twice; list each once")
    _check_items("sweep.lr", s.lr, lambda x: _number(x) and x > 0, "a learning rate > 0")
    _check_items("sweep.batch_size", s.batch_size, lambda x: _whole(x) and x >= 2, "a whole number >= 2")
    _check_items("sweep.weight_decay", s.weight_decay, lambda x: _number(x) and x >= 0, "a number >= 0")
    _check_items("sweep.epochs", s.epochs, lambda x: _whole(x) and x >= 1, "a whole number >= 1")
    _check_items("sweep.arch", s.arch, lambda x: x in _SWEEP_ARCHS, f"one of {', '.join(_SWEEP_ARCHS)}")
    _check_items("sweep.mixing_ratio", s.mixing_ratio, lambda x: _number(x) and x >= 0,
                 "a number >= 0")
    _check_items("sweep.members", s.members, lambda x: _whole(x) and x >= 1, "a whole number >= 1",
                 empty=True)
    if s.protocols:  # every cell's keys and values, and the rules tying them to the sweep
        protocol_cells(cfg)
    if s.gan_space and s.target != "gan":
        raise ConfigError("sweep.gan_space is set but sweep.target=classifier; set sweep.target: gan "
                          "(raygan sweep --target gan) or remove sweep.gan_space")
    if s.gan_space:  # every key and value through this schema (points applied with gan_space emptied)
        check_gan_space(cfg)
    gpus = cfg.cluster.gpus_per_member
    if gpus is not None and gpus > 1 and gpus != int(gpus):
        # Ray schedules fractions of one GPU only: 1.5 GPUs cannot be placed on any node.
        raise ConfigError(f"cluster.gpus_per_member={gpus:g}: above 1 it must be a whole number of "
                          "GPUs; use a fraction below 1 (0.5, 0.25) to share a GPU or 1, 2, ...")


def _check_output_names(cfg: Config) -> None:
    """output.experiment, output.run and sweep.name are folder names below output.root, never a way
    out of it (an absolute path, or a .. part)."""
    for key, name in (("output.experiment", cfg.output.experiment), ("output.run", cfg.output.run),
                      ("sweep.name", cfg.sweep.name)):
        parts = name.replace("\\", "/").split("/")
        if not name.strip() or name.startswith(("/", "~")) or (len(name) > 1 and name[1] == ":") \
                or any(p in ("..", ".") for p in parts) or "" in parts:
            raise ConfigError(f"{key}={name!r} would leave or blur the run folder below output.root; "
                              "give a plain relative name such as my_run (no leading /, no . or .. "
                              "parts)")


def _check_biggan(cfg: Config) -> None:
    """The hinge loss, a dataset's native size a DCGAN cannot take, and biggan's options: its image size and attention
    resolution where the config decides the size, by the model's own rule (raygan.config.families); raygan.gan.models.biggan
    refuses the rest when it is built."""
    g, d = cfg.gan, cfg.data
    if g.loss == "hinge" and g.real_label != 1.0:
        raise ConfigError(f"gan.real_label={g.real_label:g} smooths a target, and gan.loss=hinge has none; "
                          "set gan.real_label=1 or another gan.loss")
    r = g.attention_resolution
    if r is not None and g.family != "biggan":
        raise ConfigError(f"gan.attention_resolution={r} places biggan's self-attention, and gan.family="
                          f"{g.family} has none; set gan.attention_resolution=null")
    size = image_size(d.name, d.image_size, d.medmnist_size)
    # a native size a DCGAN cannot take (lfw_subset's 25 px); a chosen data.image_size is the model's to refuse
    if g.family in DCGAN_BLOCKS and d.image_size is None and size is not None and not _dcgan_size(size):
        raise ConfigError(f"gan.family={g.family} needs an image size that halves to 4..7 (8, 16, 28, 32, 64, "
                          f"128), and data.name={d.name} gives {size} px; set data.image_size (e.g. 32)")
    if g.family != "biggan" or size is None:
        return
    try:
        biggan_up_blocks(size)
    except ValueError as err:
        raise ConfigError(f"{err} (data.name={d.name} gives {size} px)") from err
    try:
        biggan_attention_stage(r, size)
    except ValueError as err:
        raise ConfigError(str(err)) from err


def _check_medmnist(d) -> None:
    """data.medmnist_flag names the file data.name=medmnist reads, and means nothing to another dataset."""
    if d.name == "medmnist" and d.medmnist_flag is None:
        raise ConfigError("data.name=medmnist needs data.medmnist_flag, the MedMNIST dataset to read (e.g. "
                          "pathmnist, whose file is data.root/pathmnist.npz)")
    if d.name != "medmnist" and d.medmnist_flag is not None:
        raise ConfigError(f"data.medmnist_flag={d.medmnist_flag} picks a MedMNIST file, and data.name="
                          f"{d.name} reads none; set data.medmnist_flag=null or data.name=medmnist")


def _check_diffaugment(cfg: Config) -> None:
    """gan.diffaugment names known transforms of images, on a member whose D step is the plain one."""
    names = [p.strip() for p in cfg.gan.diffaugment.split(",") if p.strip()]
    if not names:
        return
    unknown = [n for n in names if n not in DIFFAUGMENT_POLICIES]
    if unknown:
        raise ConfigError(f"gan.diffaugment: unknown transform(s) {unknown}; use a comma-separated subset of "
                          f"{', '.join(DIFFAUGMENT_POLICIES)} (\"\" is off)")
    why = ("it augments images, and gan.family=" + cfg.gan.family + " is not convolutional"
           if cfg.gan.family not in CONVOLUTIONAL else "privacy's DP-SGD step of D does not augment yet"
           if cfg.privacy.epsilon is not None else "a captured CUDA graph step takes no augmentation"
           if cfg.train.cuda_graphs else None)
    if why:
        raise ConfigError(f"gan.diffaugment={cfg.gan.diffaugment} is refused: {why}; set gan.diffaugment=\"\"")


def _dcgan_size(size: int) -> bool:
    """raygan.gan.models.dcgan's rule: at least one stride-2 stage, ending at a 4..7 px map."""
    stages = 0
    while size % 2 == 0 and size > 4:
        size, stages = size // 2, stages + 1
    return stages > 0 and 4 <= size <= 7


def _check_d_levers(cfg: Config) -> None:
    """gan.pacgan and gan.minibatch_std (raygan.gan.models.d_levers): a family whose D takes them, a batch
    that splits into packs and groups, and a D step that is not DP-SGD's (whose per-record gradients
    a pack or a group statistic would mix)."""
    g, batch = cfg.gan, cfg.train.batch_size
    family = FAMILIES[g.family]
    for key, value, on, why in (("pacgan", g.pacgan, g.pacgan > 1, family.no_pacgan_because),
                                ("minibatch_std", g.minibatch_std, g.minibatch_std > 0,
                                 family.no_minibatch_std_because)):
        off = 1 if key == "pacgan" else 0
        if on and why is not None:
            raise ConfigError(f"gan.{key}={value} is refused with gan.family={g.family}: {why}; set "
                              f"gan.{key}={off}")
        if on and cfg.privacy.epsilon is not None:
            raise ConfigError(f"gan.{key}={value} mixes several real records in one discriminator gradient, "
                              f"which DP-SGD clips record by record; set gan.{key}={off} (or privacy.epsilon=null)")
    if batch % g.pacgan:
        raise ConfigError(f"train.batch_size={batch} does not split into PacGAN packs of gan.pacgan={g.pacgan}; "
                          f"set train.batch_size to a multiple of {g.pacgan}")
    if g.minibatch_std == 1:
        raise ConfigError("gan.minibatch_std=1: a group of one sample has no spread; use 2 or more (4 is "
                          "StyleGAN's) or 0 (off)")
    packs = batch // g.pacgan
    if g.minibatch_std and packs % g.minibatch_std:
        raise ConfigError(f"gan.minibatch_std={g.minibatch_std} does not divide the discriminator's batch of "
                          f"{packs} (train.batch_size={batch} / gan.pacgan={g.pacgan}); pick a divisor of "
                          f"{packs} or change train.batch_size")


def _check_collapse(cfg: Config) -> None:
    """ensemble.on_collapse=drop leaves a member out as a diverged one, which a boosting loop cannot do
    to a member its next steps' data weights were built on; drop and retrain decide from private images
    that the privacy ledger does not cover."""
    action = cfg.ensemble.on_collapse
    if action == "drop" and cfg.ensemble.method != "independent":
        raise ConfigError(f"ensemble.on_collapse=drop leaves members out after training, and ensemble.method="
                          f"{cfg.ensemble.method} builds each step on the last; use on_collapse=warn or retrain")
    if action != "warn" and cfg.privacy.epsilon is not None:
        raise ConfigError(f"ensemble.on_collapse={action} decides from the class's private images, which "
                          "the privacy ledger does not cover (members under privacy are not measured); "
                          "set ensemble.on_collapse=warn")


def _check_relations(cfg: Config) -> None:
    d, e = cfg.data, cfg.ensemble
    if d.grouping is not None and d.classes is not None:
        raise ConfigError("data.grouping and data.classes are both set; keep one of them")
    if d.classes is not None:
        for name, labels in d.classes.items():
            if not isinstance(labels, list) or not labels or not all(isinstance(x, int) for x in labels):
                raise ConfigError(f"data.classes.{name}: expected a non-empty list of integer labels, "
                                  f"got {labels!r}")
    if d.val_fraction + d.test_fraction >= 1.0:
        raise ConfigError("data.val_fraction + data.test_fraction must be < 1 so that a training "
                          "split remains")
    if e.weights is not None:
        if len(e.weights) != e.members:
            raise ConfigError(f"ensemble.weights has {len(e.weights)} entries but ensemble.members is "
                              f"{e.members}; give one weight per member")
        if any((not isinstance(w, (int, float))) or w < 0 for w in e.weights) or \
                abs(sum(e.weights) - 1.0) > 1e-6:
            raise ConfigError(f"ensemble.weights must be non-negative numbers summing to 1, got "
                              f"{e.weights}")
    if e.samples_per_class is not None and e.samples_ratio is not None:
        raise ConfigError(f"ensemble.samples_per_class={e.samples_per_class} and ensemble.samples_ratio="
                          f"{e.samples_ratio} both set N_g; keep one of them")
    if cfg.gan.ema_decay >= 1.0:
        raise ConfigError(f"gan.ema_decay: {cfg.gan.ema_decay!r} is out of range; it must be < 1 (0 is "
                          "off; 0.999 averages about the last thousand generator steps)")
    models_points = FAMILIES[cfg.gan.family].points
    if is_points(d.name) and not models_points:
        raise ConfigError(f"gan.family {cfg.gan.family!r} cannot model 2D points; use gan.family=mlp2d "
                          f"with data.name={d.name}")
    if not is_points(d.name) and models_points:
        raise ConfigError(f"gan.family {cfg.gan.family} is for data.name=grid2d; use dcgan or fc for images")
    g, t = cfg.gan, cfg.train
    if g.family in CONDITIONAL and cfg.ensemble.method != "independent":
        raise ConfigError(f"gan.family={g.family} trains one model for every class, but ensemble.method="
                          f"{cfg.ensemble.method} reweights each class's data separately; use "
                          "ensemble.method=independent or gan.family=dcgan")
    if t.recursive_rounds and cfg.ensemble.method != "independent":
        raise ConfigError("train.recursive_rounds needs ensemble.method=independent (boosting already "
                          "changes each member's training data); set train.recursive_rounds=0")
    if t.recursive_rounds and g.family in CONDITIONAL:
        raise ConfigError(f"train.recursive_rounds is not supported with gan.family={g.family} (its "
                          "synthetic rounds would need labels); use gan.family=dcgan")
    _check_biggan(cfg)
    if g.g_norm != "batch" and g.family not in DCGAN_BLOCKS:
        raise ConfigError(f"gan.g_norm={g.g_norm} is a DCGAN/CCGAN generator's (seed 004's layer, seed "
                          f"003's vbn); gan.family={g.family} has its own normalisation; set gan.g_norm=batch")
    if g.d_depth != 1 and g.family not in DCGAN_BLOCKS:
        raise ConfigError(f"gan.d_depth={g.d_depth} deepens the DCGAN/CCGAN discriminator (seed 003); "
                          f"gan.family={g.family} has its own; set gan.d_depth=1")
    if d.name in ("mnist", "fashion_mnist", "cifar10", "svhn", "imagefolder", "parquet", "medmnist") and \
            d.root is None:
        raise ConfigError(f"data.name={d.name} reads its files from data.root, which is not set; set "
                          "data.root to the folder holding them"
                          + (" (or to where data.download: true should put them)"
                             if d.name not in ("imagefolder", "parquet", "medmnist") else ""))
    if d.download and d.name in ("imagefolder", "parquet", "medmnist", "lfw_subset", "skimage_patches"):
        raise ConfigError(f"data.download applies to torchvision datasets, not {d.name}; "
                          "set data.download: false" + (" and put the MedMNIST .npz under data.root "
                                                        "(https://medmnist.com)" if d.name == "medmnist" else ""))
    _check_medmnist(d)
    _check_collapse(cfg)
    _check_diffaugment(cfg)
    _check_d_levers(cfg)
    packs, why = cfg.cluster.members_per_task, why_not_packable(cfg)
    if packs is not None and packs > 1 and why is not None:
        raise ConfigError(f"cluster.members_per_task={packs} packs members into one task, but {why}; "
                          "set cluster.members_per_task=1 (or null: auto packs only what it can)")
    # The speed levers' rules that the config alone decides, at load rather than inside a Ray task.
    check_lever_config(cfg.gan, cfg.train, packed=why is None and packs != 1)
    if cfg.grid_eval.max_ensemble > cfg.grid_eval.gans:
        raise ConfigError(f"grid_eval.max_ensemble ({cfg.grid_eval.max_ensemble}) exceeds "
                          f"grid_eval.gans ({cfg.grid_eval.gans}); train at least as many GANs")


__all__ = ["AUDIT_SPACES", "POINT_DATASETS", "check_config", "is_points", "why_not_packable"]
