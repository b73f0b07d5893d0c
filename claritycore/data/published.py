"""The published weights files ClarityCore fetches by name, as data: the backbones its losses
and scores use (VGG19, AlexNet) and the published RRDBNet generators and discriminators a run
can start from (`train.pretrained`, `adversarial.pretrained_d`) or `upscale -m NAME` can use.

Each row gives the file, where it is served, its exact size and sha256 as public records state
them, the license and, in `source`, which public record each figure comes from. A figure no
public record gives is absent (size None, sha256 ""); where only the first hex digits of the
sha256 are published (torch.hub and BasicSR name files by them), `sha256` holds that prefix.
`backbones.verify` checks exactly what is there and `checks` says which. This module imports no
torch: `resolve` and the data stages read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from claritycore.errors import ConfigError

Role = Literal["backbone", "generator", "discriminator"]
FULL_SHA256 = 64

_REAL_ESRGAN = "https://github.com/xinntao/Real-ESRGAN/releases/download"
# xinntao/ESRGAN's README links its two models in this Google Drive folder (no direct link).
_ESRGAN_DRIVE = "https://drive.google.com/drive/folders/17VYV_SoZZesU6mbxz2dMAIccSSlqLecY"
_RRDBNET_X4 = {"model_type": "rrdbnet", "scale": 4, "num_feat": 64, "num_block": 23,
               "num_grow_ch": 32, "upsampler": "nearest"}  # fmt: skip
_UNET_SN = {"discriminator": "unet_sn", "d_num_feat": 64}
# Where a size and sha256 come from when several independent projects record the same values.
_MANIFESTS = (
    "size and sha256 as recorded alike by several independent public download manifests "
    "(found by code search; e.g. the AUR python-realesrgan PKGBUILD's sha256sums)"
)
_NOT_PUBLISHED = (
    "unverified: no public record of its size or sha256 was found; only its tensors' names "
    "and shapes are checked, when it is loaded"
)


@dataclass(frozen=True)
class PublishedFile:
    """A published weights file: its name, where it is served, its size and sha256 (or what of
    them is published), and for a model the architecture it holds."""

    file: str
    url: str
    size: int | None  # bytes; None: no public record states it
    sha256: str  # the full hex digest, its first hex digits where only those are published, or ""
    description: str
    license: str = ""
    source: str = ""  # the public record of the size and sha256 (or "unverified: ...")
    role: Role = "backbone"
    # A generator: its model config's fields (with model_type); a discriminator: the
    # adversarial fields it fits (discriminator, d_num_feat).
    architecture: Mapping[str, Any] = field(default_factory=dict)
    layout: str = ""  # how its tensors are stored (interop reads every one of these)
    direct: bool = True  # `url` serves the file itself (False: a page to download it from)

    @property
    def scale(self) -> int | None:
        return self.architecture.get("scale")

    def checks(self) -> str:
        """What verifying this file compares, in words."""
        if len(self.sha256) == FULL_SHA256:
            return "size and sha256" if self.size is not None else "sha256"
        what = [] if self.size is None else ["size"]
        if self.sha256:
            what.append(f"the sha256 prefix {self.sha256}")
        if not what:
            return "nothing (neither size nor sha256 is published)"
        return f"{' and '.join(what)} (the full sha256 is not published)"


PUBLISHED: dict[str, PublishedFile] = {
    # The backbones: the first 8 hex digits of each sha256 are in the file name, which
    # torchvision derives from the same digest (torch.hub checks only that prefix); sizes and
    # full digests as style-metrics and LPIPS provenance tables record them.
    "vgg19": PublishedFile(
        "vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        574_673_361, "dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44",
        "torchvision's ImageNet VGG19, for the perceptual loss", "BSD-3-Clause (torchvision)",
        "several independent public provenance tables; the prefix is in the file name",
        layout="torchvision",
    ),
    "alexnet": PublishedFile(
        "alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        244_408_911, "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
        "torchvision's ImageNet AlexNet, for LPIPS", "BSD-3-Clause (torchvision)",
        "several independent public provenance tables; the prefix is in the file name",
        layout="torchvision",
    ),
    # ESRGAN (xinntao/ESRGAN, 2018): the paper's models, in the RRDB_trunk.* layout (the first
    # release used model.N.sub.*; interop reads both).
    "RRDB_ESRGAN_x4": PublishedFile(
        "RRDB_ESRGAN_x4.pth", _ESRGAN_DRIVE, None, "",
        "ESRGAN's GAN model (paper), ×4, bicubic degradation", "Apache-2.0 (xinntao/ESRGAN)",
        _NOT_PUBLISHED, "generator", _RRDBNET_X4, "esrgan (RRDB_trunk.*)", direct=False,
    ),
    "RRDB_PSNR_x4": PublishedFile(
        "RRDB_PSNR_x4.pth", _ESRGAN_DRIVE, None, "",
        "ESRGAN's PSNR model, ×4, bicubic degradation", "Apache-2.0 (xinntao/ESRGAN)",
        _NOT_PUBLISHED, "generator", _RRDBNET_X4, "esrgan (RRDB_trunk.*)", direct=False,
    ),
    # BasicSR's official ESRGAN, as Real-ESRGAN's release v0.1.1 serves it.
    "ESRGAN_SRx4_DF2KOST_official": PublishedFile(
        "ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
        f"{_REAL_ESRGAN}/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth", None, "ff704c30",
        "BasicSR's official ESRGAN ×4 (DF2K+OST), the start of Real-ESRNet", "Apache-2.0 (BasicSR)",
        "sha256 prefix from the file name (BasicSR names published files by their sha256's "
        "first 8 hex digits, as torch.hub does); size unverified: no public record found",
        "generator", _RRDBNET_X4, "params (BasicSR)",
    ),
    # Real-ESRGAN (xinntao/Real-ESRGAN): URLs as its README, docs/model_zoo.md and Training.md
    # give them.
    "RealESRNet_x4plus": PublishedFile(
        "RealESRNet_x4plus.pth", f"{_REAL_ESRGAN}/v0.1.1/RealESRNet_x4plus.pth",
        67_040_989, "a820b9bde89a874d7599d545567308ce6c128fc8754a53208eda016d40aa81df",
        "Real-ESRNet ×4 (L1 on real-world degradations)", "BSD-3-Clause",
        f"{_MANIFESTS}; two other records give other digests, so a mismatch is reported as such",
        "generator", _RRDBNET_X4, "params_ema",
    ),
    "RealESRGAN_x4plus": PublishedFile(
        "RealESRGAN_x4plus.pth", f"{_REAL_ESRGAN}/v0.1.0/RealESRGAN_x4plus.pth",
        67_040_989, "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
        "Real-ESRGAN ×4 (GAN, real-world degradations)", "BSD-3-Clause", _MANIFESTS,
        "generator", _RRDBNET_X4, "params_ema",
    ),
    "RealESRGAN_x4plus_netD": PublishedFile(
        "RealESRGAN_x4plus_netD.pth", f"{_REAL_ESRGAN}/v0.2.2.3/RealESRGAN_x4plus_netD.pth",
        None, "", "Real-ESRGAN ×4's U-Net SN discriminator, for fine-tuning", "BSD-3-Clause",
        _NOT_PUBLISHED, "discriminator", _UNET_SN, "params",
    ),
    "RealESRGAN_x2plus": PublishedFile(
        "RealESRGAN_x2plus.pth", f"{_REAL_ESRGAN}/v0.2.1/RealESRGAN_x2plus.pth",
        67_061_725, "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
        "Real-ESRGAN ×2 (2×2 pixel-unshuffled input, then ×4)", "BSD-3-Clause", _MANIFESTS,
        "generator", {**_RRDBNET_X4, "scale": 2, "x2_unshuffle": True}, "params_ema",
    ),
    "RealESRGAN_x2plus_netD": PublishedFile(
        "RealESRGAN_x2plus_netD.pth", f"{_REAL_ESRGAN}/v0.2.2.3/RealESRGAN_x2plus_netD.pth",
        None, "", "Real-ESRGAN ×2's U-Net SN discriminator, for fine-tuning", "BSD-3-Clause",
        _NOT_PUBLISHED, "discriminator", _UNET_SN, "params",
    ),
    "RealESRGAN_x4plus_anime_6B": PublishedFile(
        "RealESRGAN_x4plus_anime_6B.pth", f"{_REAL_ESRGAN}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
        17_938_799, "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
        "Real-ESRGAN ×4 for anime, 6 RRDB blocks", "BSD-3-Clause", _MANIFESTS,
        "generator", {**_RRDBNET_X4, "num_block": 6}, "params_ema",
    ),
}  # fmt: skip


def published(name: str, role: Role | None = None) -> PublishedFile:
    """The row called `name` (of `role`, if given), or a ConfigError listing the names."""
    entry = PUBLISHED.get(name)
    if entry is None or (role is not None and entry.role != role):
        known = [n for n, e in PUBLISHED.items() if role is None or e.role == role]
        kind = f"published {role}" if role else "published file"
        raise ConfigError(
            f"unknown {kind} {name!r}; known: {', '.join(known)} (`claritycore models`)"
        )
    return entry


def is_published_name(value: str, role: Role | None = None) -> bool:
    """Whether `value` names a row (of `role`): a name, not a path."""
    entry = PUBLISHED.get(value)
    return entry is not None and (role is None or entry.role == role)
