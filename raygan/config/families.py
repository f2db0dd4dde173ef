"""The GAN families' facts, as data: one row per gan.family (``FAMILIES``), and biggan's size rule.

Every stage that asks what a family is (the config's checks, the model registry raygan.gan.models,
the training loop, packs, speed levers, the planner) reads this table, so that a fact is stated once
and a bad combination is refused when the config loads, before any work. The table holds data only;
the models themselves are raygan.gan.models' (this module imports no torch: the config layer's rule).

biggan's size rule is arithmetic on the image size that both its model (raygan.gan.models.biggan)
and the config check run, so the check refuses exactly what the model cannot build.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Family:
    """What raygan knows of one GAN family, beyond its networks."""
    conditional: bool = False    # one model for every class: G(z, y) and D(x, y), labels with the data
    progressive: bool = False    # G and D grow on a schedule over train.steps (set_progress)
    points: bool = False         # models 2-D points (data.name=grid2d), not images
    convolutional: bool = False  # its G and D are built of convolutions
    channels_last: bool = False  # train.channels_last applies (raygan lays out these convolutions)
    dcgan_blocks: bool = False   # DCGAN's generator and discriminator: gan.g_norm and gan.d_depth apply
    # Why P members cannot train as one packed model (raygan.gan.pack), or None when they can.
    unpackable_because: Optional[str] = None
    # Why its D takes no PacGAN packing (gan.pacgan) / minibatch standard-deviation layer
    # (gan.minibatch_std; raygan.gan.models.d_levers), or None when it does.
    no_pacgan_because: Optional[str] = None
    no_minibatch_std_because: Optional[str] = None

    @property
    def packable(self) -> bool:
        return self.unpackable_because is None


# In the order gan.family's documentation and choices list them.
FAMILIES: dict[str, Family] = {
    "mlp2d": Family(points=True),
    "dcgan": Family(convolutional=True, channels_last=True, dcgan_blocks=True),
    "ccgan": Family(conditional=True, convolutional=True, channels_last=True, dcgan_blocks=True),
    "pggan": Family(progressive=True, convolutional=True, channels_last=True,
                    unpackable_because="its graph grows: layers are added and faded in on a schedule",
                    no_minibatch_std_because="its discriminator always has Karras et al.'s layer"),
    "fc": Family(),
    "biggan": Family(conditional=True, convolutional=True,
                     unpackable_because="raygan.gan.pack's grouped layers have no form of spectral norm's "
                                        "power iteration, conditional batch norm or self-attention",
                     no_pacgan_because="its projection discriminator scores each sample against its own class",
                     no_minibatch_std_because="raygan's BigGAN discriminator has no place for it yet"),
}

FAMILY_NAMES = tuple(FAMILIES)
DIFFAUGMENT_POLICIES = ("color", "translation", "cutout")  # gan.diffaugment's transforms (raygan.gan.diffaugment)
CONDITIONAL = frozenset(name for name, f in FAMILIES.items() if f.conditional)
PROGRESSIVE = frozenset(name for name, f in FAMILIES.items() if f.progressive)
PACKABLE = frozenset(name for name, f in FAMILIES.items() if f.packable)
UNPACKABLE = frozenset(FAMILIES) - PACKABLE
CONVOLUTIONAL = frozenset(name for name, f in FAMILIES.items() if f.convolutional)
CHANNELS_LAST = frozenset(name for name, f in FAMILIES.items() if f.channels_last)
DCGAN_BLOCKS = frozenset(name for name, f in FAMILIES.items() if f.dcgan_blocks)


# --- biggan's size rule ------------------------------------------------------------------------------
BIGGAN_BOTTOM = 4  # biggan's G starts from, and its D ends at, a 4 x 4 map (BigGAN's bottom width)


def biggan_up_blocks(image_size: int) -> int:
    """biggan's G residual up-blocks (D's down-blocks) for a square image: log2(image_size / 4);
    ValueError for a size it cannot have."""
    blocks = (int(image_size) // BIGGAN_BOTTOM).bit_length() - 1
    if image_size < 2 * BIGGAN_BOTTOM or BIGGAN_BOTTOM * 2 ** blocks != image_size:
        raise ValueError(f"gan.family=biggan needs a power-of-two image size of 8 or more (8, 16, 32, "
                         f"64, 128), got {image_size}; set data.image_size")
    return blocks


def biggan_attention_resolutions(image_size: int) -> tuple[int, ...]:
    """The resolutions at which both biggan's G and D have a feature map for the self-attention block."""
    return tuple(BIGGAN_BOTTOM * 2 ** i for i in range(biggan_up_blocks(image_size)))


def biggan_attention_stage(attention_resolution: Optional[int], image_size: int) -> Optional[int]:
    """The stage of biggan's self-attention (0: G's 4 x 4 input map / D's last down-block; i: i
    up-blocks later), None for none; ValueError for a size or resolution biggan cannot have."""
    allowed = biggan_attention_resolutions(image_size)
    if attention_resolution is None:
        return None
    if attention_resolution not in allowed:
        raise ValueError(f"gan.attention_resolution={attention_resolution} is not a resolution of a "
                         f"{image_size} px biggan's G and D; choose one of "
                         f"{', '.join(map(str, allowed))}, or null")
    return allowed.index(attention_resolution)


__all__ = ["BIGGAN_BOTTOM", "CHANNELS_LAST", "CONDITIONAL", "CONVOLUTIONAL", "DCGAN_BLOCKS", "DIFFAUGMENT_POLICIES", "FAMILIES",
           "FAMILY_NAMES", "Family", "PACKABLE", "PROGRESSIVE", "UNPACKABLE", "biggan_attention_resolutions",
           "biggan_attention_stage", "biggan_up_blocks"]
