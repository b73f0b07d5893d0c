"""Training pairs cropped from a patch store.

Every random choice of sample `i` is a pure function of (seed, i): a counter-based generator
(BLAKE2b of the pair, as Philox-style counters do with a block cipher). The trainer resumes at
index step·batch_size, and DDP rank r of W reads its slice of each global batch, with no RNG
state to save or share. BLAKE2b costs ~1 µs where `np.random.default_rng([seed, i])` costs
~50 µs, a tenth of the per-sample budget at 2,000 patches/s.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from claritycore.config import DegradationConfig
from claritycore.data.store import ImageStore
from claritycore.degradation import BatchedDraws, SampleDraw, collate_draws, draw_sample
from claritycore.degradation.draws import counter_generator

ORIENTATIONS = 8
_PERSON = b"claritycore-crop"  # domain separation: these draws are for crops only
_EPOCH_PERSON = b"claritycore-epoc"  # and these for the order of the images in an epoch


def counter_random(seed: int, index: int) -> tuple[int, int]:
    """Two independent uniform 64-bit integers determined by (seed, index) alone."""
    digest = hashlib.blake2b(struct.pack("<QQ", seed, index), digest_size=16, person=_PERSON)
    return struct.unpack("<QQ", digest.digest())


def orient(planes: np.ndarray, orientation: int) -> np.ndarray:
    """One of the 8 flip/rotation symmetries of a (C, H, W) array, as a view.

    Bit 0 flips left-right, bit 1 flips top-bottom, bit 2 swaps H and W (a transpose).
    """
    if orientation & 1:
        planes = planes[:, :, ::-1]
    if orientation & 2:
        planes = planes[:, ::-1, :]
    if orientation & 4:
        planes = planes.transpose(0, 2, 1)
    return planes


def _oriented_tensor(planes: np.ndarray, orientation: int) -> torch.Tensor:
    """`orient(planes, orientation)` as a tensor that owns its memory, made with one crop copy.

    Equal to `torch.from_numpy(np.ascontiguousarray(orient(...)))`, but faster for a mirrored
    crop: numpy copies a reversed uint8 axis element by element, torch's `flip` is vectorised
    (3×256×256: 44 µs vs 134 µs). For transposes numpy's strided copy is the faster one.
    """
    flip_columns = bool(orientation & 1 and not orientation & 4)
    # Without the column flip, reversed rows still copy as contiguous runs.
    planes = orient(planes, orientation & 2 if flip_columns else orientation)
    array = np.ascontiguousarray(planes)
    if not array.flags.writeable:  # e.g. the whole image unflipped: still a view on the memmap
        array = array.copy()
    tensor = torch.from_numpy(array)
    return tensor.flip(2) if flip_columns else tensor


class PairedPatchDataset(Dataset):
    """Aligned random crops `(lr, hr)` as uint8 CHW tensors from the store at `store_path`.

    `patch_size` is the HR side (a multiple of the store's scale). Sample `i` is drawn
    uniformly over every LR crop position of every usable image (so large images give
    proportionally more crops), then, with `augment`, one of the 8 orientations. The HR crop
    is the LR position times the scale. Images smaller than the patch are skipped with a
    warning; `len(self)` is `length`.
    """

    def __init__(
        self, store_path: Path, *, patch_size: int, seed: int, length: int, augment: bool = True
    ) -> None:
        self.store = ImageStore.open(store_path)
        self.scale = self.store.scale
        if patch_size <= 0 or patch_size % self.scale:
            raise ValueError(
                f"patch_size={patch_size} must be a positive multiple of the store's scale "
                f"{self.scale} ({self.store.path})"
            )
        if not 0 <= seed < 2**64 or length < 0:
            raise ValueError(f"seed and length must be non-negative, got {seed} and {length}")
        self.patch_size, self.seed, self.length, self.augment = patch_size, seed, length, augment
        self.lr_patch = lr_patch = patch_size // self.scale
        shapes = [image.lr_shape[1:] for image in self.store.images]
        self.usable = [i for i, (h, w) in enumerate(shapes) if h >= lr_patch and w >= lr_patch]
        self.skipped = len(shapes) - len(self.usable)
        if not self.usable:
            largest = max(shapes, key=lambda s: s[0] * s[1])
            raise ValueError(
                f"no image in {self.store.path} holds a {patch_size}px HR patch (largest LR "
                f"image {largest[1]}x{largest[0]} px vs {lr_patch}px needed); use a smaller "
                "patch_size or larger images"
            )
        if self.skipped:
            warnings.warn(
                f"{self.skipped} of {len(shapes)} images in {self.store.path} are smaller than "
                f"the {patch_size}px patch and are skipped",
                stacklevel=2,
            )
        # Crop positions per usable image: x in [0, w - p], y in [0, h - p].
        self._cols = np.array([shapes[i][1] - lr_patch + 1 for i in self.usable], dtype=np.int64)
        rows = np.array([shapes[i][0] - lr_patch + 1 for i in self.usable], dtype=np.int64)
        self._ends = np.cumsum(rows * self._cols)
        self._total = int(self._ends[-1])

    def __len__(self) -> int:
        return self.length

    def draw(self, index: int) -> tuple[int, int, int, int]:
        """(store image, LR top, LR left, orientation) of sample `index`: a pure function."""
        word0, word1 = counter_random(self.seed, index)
        # Modulo bias is below total/2^64: negligible for any store.
        position = word0 % self._total
        j = int(np.searchsorted(self._ends, position, side="right"))
        position -= int(self._ends[j - 1]) if j else 0
        top, left = divmod(position, int(self._cols[j]))
        orientation = word1 % ORIENTATIONS if self.augment else 0
        return self.usable[j], top, left, orientation

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"sample {index} out of range for a dataset of {self.length}")
        image, top, left, orientation = self.draw(index)
        p, s = self.lr_patch, self.scale
        lr = self.store.lr_planar(image)[:, top : top + p, left : left + p]
        hr = self.store.hr_region(image, top * s, left * s, p * s, p * s)
        return _oriented_tensor(lr, orientation), _oriented_tensor(hr, orientation)


class HRRegionDataset(Dataset):
    """HR regions for degradation on the training device, as Real-ESRGAN feeds its pipeline:
    sample `i` is a `degradation.region(...)`² crop of one HR image (reflect-padded at the
    bottom and right where the image is smaller), in one of the 8 orientations, with its
    degradation choices (`draw_sample`) and the LR position of the training patch that is cut
    from the degraded region. Every choice is a pure function of (seed, i). The images are
    taken as Real-ESRGAN's DataLoader takes them: each once per epoch, in an order shuffled
    anew each epoch (`epoch_order`), so a small image counts as much as a large one; the
    region is uniform over the image's positions. Reads only the store's HR planes; batch with
    `collate_regions`."""

    def __init__(
        self,
        store_path: Path,
        *,
        patch_size: int,
        seed: int,
        length: int,
        degradation: DegradationConfig,
        augment: bool = True,
    ) -> None:
        self.store = ImageStore.open(store_path)
        self.scale = scale = self.store.scale
        if not 0 <= seed < 2**64 or length < 0:
            raise ValueError(f"seed and length must be non-negative, got {seed} and {length}")
        self.region = region = degradation.region(scale, patch_size)
        if patch_size <= 0 or patch_size % scale or region % scale or region < patch_size:
            raise ValueError(
                f"patch_size={patch_size} and region {region} must be multiples of the store's "
                f"scale {scale}, the region at least the patch ({self.store.path})"
            )
        self.patch_size, self.seed, self.length, self.augment = patch_size, seed, length, augment
        self.degradation = degradation
        self._shapes = [image.hr_shape[1:] for image in self.store.images]
        # Region positions per image: top in [0, rows), left in [0, cols).
        self._cols = [max(w, region) - region + 1 for _, w in self._shapes]
        self._positions = [
            (max(h, region) - region + 1) * cols
            for (h, _), cols in zip(self._shapes, self._cols, strict=True)
        ]
        # Aligned LR positions of the patch in the degraded region, per side.
        self._patch_places = (region - patch_size) // scale + 1

    def __len__(self) -> int:
        return self.length

    def draw(self, index: int) -> tuple[int, int, int, int, int, int]:
        """(image, region top, region left, orientation, patch LR top, patch LR left) of
        sample `index`: a pure function."""
        word0, word1 = counter_random(self.seed, index)
        epoch, turn = divmod(index, len(self._shapes))
        image = int(epoch_order(self.seed, epoch, len(self._shapes))[turn])
        # Modulo bias below positions/2^64.
        top, left = divmod(word0 % self._positions[image], self._cols[image])
        orientation = word1 % ORIENTATIONS if self.augment else 0
        places = self._patch_places
        patch_top, patch_left = divmod((word1 // ORIENTATIONS) % (places * places), places)
        return image, top, left, orientation, patch_top, patch_left

    def __getitem__(self, index: int) -> tuple[torch.Tensor, SampleDraw, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"sample {index} out of range for a dataset of {self.length}")
        image, top, left, orientation, patch_top, patch_left = self.draw(index)
        side = self.region
        h, w = self._shapes[image]
        if h < side or w < side:
            # Real-ESRGAN pads a small image with cv2.BORDER_REFLECT_101 (numpy's "reflect").
            pad = ((0, 0), (0, max(0, side - h)), (0, max(0, side - w)))
            planes = np.pad(self.store.hr_planar(image), pad, mode="reflect")
            region = planes[:, top : top + side, left : left + side]
        else:
            region = self.store.hr_region(image, top, left, side, side)
        draw = draw_sample(self.degradation, self.seed, index)
        return _oriented_tensor(region, orientation), draw, torch.tensor([patch_top, patch_left])


@lru_cache(maxsize=2)  # a batch spans at most two epochs
def epoch_order(seed: int, epoch: int, images: int) -> np.ndarray:
    """The order in which epoch `epoch` takes the `images` images: a permutation that is a
    pure function of (seed, epoch)."""
    return counter_generator(_EPOCH_PERSON, seed, epoch).permutation(images)


def collate_regions(
    batch: list[tuple[torch.Tensor, SampleDraw, torch.Tensor]],
) -> tuple[torch.Tensor, BatchedDraws, torch.Tensor]:
    """DataLoader collate_fn for HRRegionDataset: (B, 3, R, R) uint8 regions, their draws and
    the (B, 2) LR positions of their patches."""
    regions = torch.stack([region for region, _, _ in batch])
    places = torch.stack([place for _, _, place in batch])
    return regions, collate_draws([draw for _, draw, _ in batch]), places
