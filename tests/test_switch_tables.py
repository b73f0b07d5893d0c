"""Each switch of the config is one table whose keys are exactly its Literal's values: a new
choice that is not in the table (or a table entry the config cannot name) fails here."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from claritycore.config import (
    Degradation,
    DegradationConfig,
    Discriminator,
    GanType,
    HRFormat,
    Loss,
)
from claritycore.data.packing import HR_PACKERS
from claritycore.models.discriminators import DISCRIMINATORS
from claritycore.schema import choices
from claritycore.training.gan_losses import GAN_LOSSES
from claritycore.training.losses import PIXEL_LOSSES
from claritycore.training.pair_sources import PAIR_SOURCES, BatchContext
from tests.helpers import tiny_store


@pytest.mark.parametrize(
    ("table", "literal"),
    [
        (PAIR_SOURCES, Degradation),
        (PIXEL_LOSSES, Loss),
        (GAN_LOSSES, GanType),
        (DISCRIMINATORS, Discriminator),
        (HR_PACKERS, HRFormat),
    ],
    ids=["pair sources", "pixel losses", "GAN losses", "discriminators", "HR store layouts"],
)
def test_table_keys_are_the_literal(table, literal):
    assert tuple(table) == choices(literal)


@pytest.mark.parametrize("kind", list(PAIR_SOURCES))
def test_each_pair_source_makes_batches_of_the_right_shapes(tmp_path, kind):
    """Every entry turns the loader's items into a Batch: an LR of the patch / scale side and
    HR targets of the patch side, on the device, in [0, 1]."""
    store, scale, patch = tiny_store(tmp_path, scale=2), 2, 32
    source = PAIR_SOURCES[kind]
    degradation = DegradationConfig(type=kind)
    dataset = source.open_dataset(
        store, patch_size=patch, seed=0, length=4, degradation=degradation
    )
    collate = source.collate or default_collate
    item = collate([dataset[i] for i in range(2)])
    context = BatchContext(degradation, scale, patch, 0, torch.device("cpu"), False)
    batch = source.make_batch(context, item, 0)
    assert batch.low_res.shape == (2, 3, patch // scale, patch // scale)
    for target in (batch.pixel_target, batch.perceptual_target, batch.real):
        assert target.shape == (2, 3, patch, patch)
    assert batch.low_res.min() >= 0 and batch.low_res.max() <= 1
    # The store's LR is read as it is; a synthesised one differs from it.
    stored = PAIR_SOURCES["bicubic"].make_batch(
        context,
        default_collate([PAIR_SOURCES["bicubic"].open_dataset(
            store, patch_size=patch, seed=0, length=4, degradation=DegradationConfig()
        )[i] for i in range(2)]), 0,
    )  # fmt: skip
    assert torch.equal(batch.low_res, stored.low_res) == degradation.reads_store_lr


@pytest.mark.parametrize("patch", [96, 128, 192, 100])
def test_each_discriminator_states_the_patches_it_takes(patch):
    assert (DISCRIMINATORS["vgg128"].patch_error(patch, 4) is None) == (patch == 128)
    assert (DISCRIMINATORS["unet_sn"].patch_error(patch, 4) is None) == (patch % 8 == 0)
