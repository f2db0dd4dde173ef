"""Every seed raygan derives, in one place, each a named stream of a base seed.

A stream is a function of the configured base seed (``train.seed``, ``synth.seed``, ``eval.seed``)
and the indices that make a draw distinct (class, member, step, chunk, round). The formulas are the
ones runs were made with, so the same config and seed give the same members and shards as before
this module existed; the constants below name what were once offsets written inline.
"""
from __future__ import annotations

import numpy as np

# Stand-in class indices and offsets that keep streams of one member apart.
CONDITIONAL_CLASS = 1_000_000      # a conditional member covers every class: its "class index"
BOOSTING_STEP_OFFSET = 10_000      # the boosting weights of step t: member index 10_000 + t
RECURSIVE_ROUND_OFFSET = 1_000     # seed 002's recursive rounds: the GAN of round r
RECURSIVE_SAMPLES_OFFSET = 2_000   # ... and the synthetic samples it adds
DIVERSITY_PROBE_OFFSET = 3_000     # the samples and real images a member's collapse check compares
SYNTH_CHUNK_STREAM = 7             # the last word of a shard chunk's seed sequence
MIXTURE_MEMBER_STRIDE = 1_000_003  # member t of a mixture draws from seed * stride + t
CLASS_STRIDE = 1_009               # class k of a regenerated synthetic set draws from seed * stride + k
GRID_GAN_STRIDE = 7_919            # seed 000 Table 1: GAN m draws its points from seed + stride (m + 1)
MEMBER_RETRY_STREAM = 13           # the last word of a diverged member's retry seeds
PRIVACY_PARTITION_STREAM = 17      # the last word of a class's record partition (privacy.partition)
CANARY_STREAM = 19                 # the last word of a class's planted canaries (data.canaries)
_WORD = 2 ** 31                    # a member seed folded into a SeedSequence word


def _sequence(*words: int) -> int:
    return int(np.random.SeedSequence(list(words)).generate_state(1)[0])


def member(base: int, class_index: int, member_index: int) -> int:
    """A (class, member)'s own seed: initial weights, latents and minibatches of its training."""
    return _sequence(base, class_index, member_index)


def conditional_member(base: int, member_index: int) -> int:
    """A conditional member's seed (one model for every class)."""
    return member(base, CONDITIONAL_CLASS, member_index)


def member_retry(base: int, class_index: int, member_index: int, attempt: int) -> int:
    """The seed of training attempt ``attempt`` of a (class, member): attempt 0 is :func:`member`'s
    seed (runs made before retries existed keep their members); attempt a > 0 follows a divergence
    (train.divergence_retries) and draws from a stream of its own."""
    if attempt == 0:
        return member(base, class_index, member_index)
    return _sequence(base, class_index, member_index, attempt, MEMBER_RETRY_STREAM)


def conditional_member_retry(base: int, member_index: int, attempt: int) -> int:
    """:func:`member_retry` for a conditional member (attempt 0: :func:`conditional_member`)."""
    return member_retry(base, CONDITIONAL_CLASS, member_index, attempt)


def privacy_partition(base: int, class_index: int) -> int:
    """How a class's records are dealt to its members under privacy.partition=disjoint."""
    return _sequence(base, class_index, PRIVACY_PARTITION_STREAM)


def canaries(base: int, class_index: int) -> int:
    """Which training images of a class become its planted canaries and their controls (data.canaries)."""
    return _sequence(base, class_index, CANARY_STREAM)


def boosting_step(base: int, class_index: int, step: int) -> int:
    """The mixture samples and boosting classifier of step ``step`` of a class."""
    return member(base, class_index, BOOSTING_STEP_OFFSET + step)


def recursive_round(member_seed: int, round_index: int) -> int:
    """The GAN of recursive round ``round_index`` >= 1 of a member (round 0 uses the member seed)."""
    return member(member_seed % _WORD, RECURSIVE_ROUND_OFFSET + round_index, 0)


def recursive_samples(member_seed: int, round_index: int) -> int:
    """The synthetic samples that round ``round_index`` adds to the next round's training set."""
    return member(member_seed % _WORD, RECURSIVE_SAMPLES_OFFSET + round_index, 0)


def diversity_probe(member_seed: int) -> int:
    """The samples a trained member draws, and the real images picked, for its collapse check."""
    return member(member_seed % _WORD, DIVERSITY_PROBE_OFFSET, 0)


def synth_chunk(base: int, class_index: int, member_index: int, chunk: int) -> int:
    """One chunk of the shards: the shipped set is reproducible chunk by chunk."""
    return _sequence(base, class_index, member_index, chunk, SYNTH_CHUNK_STREAM)


def mixture_member(seed: int, member_index: int) -> int:
    """Member ``member_index``'s draws when a mixture is sampled with ``seed``."""
    return seed * MIXTURE_MEMBER_STRIDE + member_index


def per_class(seed: int, class_index: int) -> int:
    """Class ``class_index``'s draws of a set regenerated with ``seed`` (evaluation, PCA baseline)."""
    return seed * CLASS_STRIDE + class_index


def offset(seed: int, index: int) -> int:
    """Consecutive seeds for a small family of draws: classifier repeats, per-class grids and pairs."""
    return seed + index


def tsne(eval_seed: int) -> int:
    """The report's t-SNE map (its random_state): the evaluation's seed."""
    return eval_seed


def grid_gan_points(base: int, gan_index: int) -> int:
    """Seed 000 Table 1: the points drawn from grid GAN ``gan_index``."""
    return base + GRID_GAN_STRIDE * (gan_index + 1)
