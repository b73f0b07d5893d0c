"""Where a run starts: the generator (`train.pretrained`) and the discriminator
(`adversarial.pretrained_d`) files, each a published name (`claritycore models`) or a path;
whether their tensors fit the experiment's networks; loading them.

Loading is strict by default: every tensor of the network must be in the file with its shape.
Not strict, every tensor whose name and shape match is loaded and the rest keep their initial
values (RealESRGAN_x4plus to ×2: the body is reused, the upsampler starts fresh); `Fit` lists
both. A published name's architecture is in the table, so `resolve` checks it before the file
is fetched; a path's tensors are read.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from claritycore import interop
from claritycore.data import backbones
from claritycore.data.published import Role, is_published_name, published
from claritycore.errors import ConfigError
from claritycore.experiment import ExperimentConfig
from claritycore.models import AutoConfig, AutoModel, BaseConfig
from claritycore.models.discriminators import DISCRIMINATORS
from claritycore.weights import WeightsError

Shapes = dict[str, tuple[int, ...]]
# The params key that names each role's start file, for messages.
KEYS: dict[Role, str] = {
    "generator": "train.pretrained",
    "discriminator": "adversarial.pretrained_d",
}
_FIX = {
    "generator": "choose weights of this architecture (`claritycore models` lists each file's) "
    "or set train.pretrained_strict: false to load only the tensors whose names and shapes match",
    "discriminator": "choose a discriminator of this kind and width (adversarial.discriminator, "
    "d_num_feat) or set train.pretrained_strict: false",
}


@dataclass(frozen=True)
class StartFile:
    """A weights file a run starts from: the name it was given (a published name, or the path
    as written), where the file is, and whether every tensor must fit."""

    name: str
    path: Path
    strict: bool = True

    def record(self) -> dict[str, Any]:
        """What model.pt and build/pretrained.yaml say of it: name, file, sha256, strict."""
        sha256 = backbones.file_sha256(self.path)
        return {"name": self.name, "file": str(self.path), "sha256": sha256, "strict": self.strict}


@dataclass(frozen=True)
class Fit:
    """How a file's tensors meet a network's: those loaded, those the network keeps fresh (not
    in the file, or in another shape), the file's unused ones, and the first difference."""

    loaded: list[str]
    fresh: list[str]
    unused: list[str]
    first_difference: str | None
    found: str  # the file's first keys and how many, for the message when none fits


def _shape(shape: tuple[int, ...] | None) -> str:
    return "absent" if shape is None else "(" + ", ".join(map(str, shape)) + ")"


def compare(network: Mapping[str, tuple[int, ...]], file: Mapping[str, tuple[int, ...]]) -> Fit:
    """Match a file's tensor shapes to a network's, name by name (the network's order first)."""
    loaded = [k for k, shape in network.items() if file.get(k) == shape]
    fresh = [k for k in network if file.get(k) != network[k]]
    unused = [k for k in file if k not in network]
    first = next((k for k in [*fresh, *unused]), None)
    difference = None
    if first is not None:
        difference = (
            f"{first} is {_shape(network.get(first))} in the model and "
            f"{_shape(file.get(first))} in the file"
        )
    return Fit(loaded, fresh, unused, difference, interop.keys_found(file))


def describe_fit(role: Role, name: str, fit: Fit) -> str | None:
    """One log line for a start file not loaded whole: what loads, starts fresh, goes unused."""
    if not fit.fresh and not fit.unused:
        return None
    return (
        f"{role} from {name}: {len(fit.loaded)} tensors load; starting fresh: "
        f"{', '.join(fit.fresh) or 'none'}; unused: {', '.join(fit.unused) or 'none'}"
    )


def _meta_shapes(module: nn.Module) -> Shapes:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def generator_shapes(config: BaseConfig) -> Shapes:
    """The tensor shapes of the model `config` builds (on the meta device: no memory, no init)."""
    with torch.device("meta"):
        return _meta_shapes(AutoModel.from_config(config))


def discriminator_shapes(kind: str, num_feat: int) -> Shapes:
    """The tensor shapes of the discriminator `kind` of width `num_feat` (meta device)."""
    with torch.device("meta"):
        return _meta_shapes(DISCRIMINATORS[kind].build(num_feat))


def _published_shapes(name: str, role: Role) -> Shapes:
    arch = published(name, role).architecture
    if role == "generator":
        return generator_shapes(AutoConfig.from_dict(dict(arch)))
    return discriminator_shapes(arch["discriminator"], arch["d_num_feat"])


def file_shapes(path: Path, role: Role) -> Shapes:
    """The tensor shapes of any weights file interop reads; an unreadable one is one line."""
    try:
        state, _ = interop.read_state_dict(path)
    except WeightsError as error:
        raise ConfigError(f"{KEYS[role]}: {error}") from None
    return {k: tuple(v.shape) for k, v in state.items()}


def _is_path(value: str, role: Role) -> Path:
    """`value` as an existing file, or a ConfigError saying what a start file may be."""
    if is_published_name(value):
        raise ConfigError(
            f"{KEYS[role]}: {value} is a published {published(value).role}, not a {role}; "
            f"`claritycore models` lists each file's role"
        )
    path = Path(value)
    if not path.exists():
        raise ConfigError(
            f"{KEYS[role]}: {value} is neither a published {role} (`claritycore models`) nor an "
            "existing weights file; give one of them, or null to start from random weights"
        )
    return path


def check_fit(
    network: Shapes, value: str, role: Role, *, strict: bool, model: str = "the model"
) -> Fit:
    """How the start file `value` (a published name or a path) fits `network` (`_accepted`)."""
    if is_published_name(value, role):
        shapes = _published_shapes(value, role)
        value = f"{value} ({summary(published(value).architecture)})"
    else:
        shapes = file_shapes(_is_path(value, role), role)
    return _accepted(compare(network, shapes), value, role, strict=strict, model=model)


def summary(architecture: Mapping[str, Any]) -> str:
    """An architecture's fields in one phrase: "rrdbnet ×4, upsampler nearest, num_feat 64, …"."""
    values = dict(architecture)
    head = [values.pop(k) for k in ("model_type", "discriminator") if k in values]
    if "scale" in values:
        head.append(f"×{values.pop('scale')}")
    for key in ("in_channels", "out_channels"):
        values.pop(key, None)
    return ", ".join([" ".join(map(str, head)), *(f"{k} {v}" for k, v in values.items())])


def _accepted(fit: Fit, name: str, role: Role, *, strict: bool, model: str) -> Fit:
    """`fit`, or a ConfigError naming the first differing tensor and both shapes when `strict`
    and they differ, or when no tensor fits at all."""
    if fit.first_difference is not None and (strict or not fit.loaded):
        what = (
            "does not fit"
            if fit.loaded
            else f"has an unknown layout (found {fit.found}): no tensor fits"
        )
        raise ConfigError(
            f"{KEYS[role]}: {name} {what} {model}: {fit.first_difference}; {_FIX[role]}"
        )
    return fit


def start_values(experiment: ExperimentConfig, generator: str | None) -> dict[Role, str | None]:
    """Each role's start file as named: `generator` (train.pretrained or the preset's) and
    `adversarial.pretrained_d` (None: random weights)."""
    adversarial = experiment.adversarial
    return {
        "generator": generator,
        "discriminator": None if adversarial is None else adversarial.pretrained_d,
    }


def _network_shapes(experiment: ExperimentConfig, role: Role) -> tuple[Shapes, str]:
    """The experiment's `role` network's tensor shapes, and the network in words."""
    adversarial = experiment.adversarial
    if role == "generator" or adversarial is None:
        model = f"the experiment's model ({summary(experiment.model.to_dict())})"
        return generator_shapes(experiment.model), model
    kind, width = adversarial.discriminator, adversarial.d_num_feat
    model = f"the experiment's discriminator ({kind}, d_num_feat {width})"
    return discriminator_shapes(kind, width), model


def check_starts(
    experiment: ExperimentConfig, generator: str | None, *, strict: bool
) -> dict[Role, Fit]:
    """How the experiment's start files (`start_values`) fit its networks, a published name
    by its table row; a ConfigError (`check_fit`) when one does not."""
    fits: dict[Role, Fit] = {}
    for role, value in start_values(experiment, generator).items():
        if value is not None:
            network, model = _network_shapes(experiment, role)
            fits[role] = check_fit(network, value, role, strict=strict, model=model)
    return fits


def locate(value: str, role: Role, dest_dir: Path | None, *, strict: bool = True) -> StartFile:
    """The file `value` names: a published one fetched into `dest_dir` (the pipeline's
    data/weights; None: torch's hub cache, where a wrong file already there is refused in one
    line); a path copied into `dest_dir` (so DVC tracks it), or used where it is."""
    if is_published_name(value, role):
        if dest_dir is not None:
            path = backbones.fetch(value, dest_dir)
        elif backbones.locate(value) is not None:
            path = backbones.require(value)
        else:
            path = backbones.fetch(value, backbones.hub_dir())
        return StartFile(value, path, strict)
    path = _is_path(value, role)
    if dest_dir is not None:
        copy = Path(dest_dir) / path.name
        if not copy.is_file() or backbones.file_sha256(copy) != backbones.file_sha256(path):
            Path(dest_dir).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        path = copy
    return StartFile(value, path, strict)


def load(network: nn.Module, start: StartFile, role: Role) -> Fit:
    """Load `start` into `network`: every tensor (strict), or those whose names and shapes
    match; a file that does not fit is a one-line ConfigError."""
    try:
        state, _ = interop.read_state_dict(start.path)
    except WeightsError as error:
        raise ConfigError(f"{KEYS[role]}: {error}") from None
    own = network.state_dict()
    fit = compare(
        {k: tuple(v.shape) for k, v in own.items()}, {k: tuple(v.shape) for k, v in state.items()}
    )
    _accepted(fit, start.name, role, strict=start.strict, model=f"the {role}")
    network.load_state_dict({k: state[k] for k in fit.loaded}, strict=not fit.fresh)
    return fit


def place_starts(
    experiment: ExperimentConfig,
    generator: str | None,
    *,
    strict: bool,
    dest_dir: Path,
    records: Mapping[Role, Path],
    vgg_weights: Path | None = None,
) -> dict[Role, StartFile | None]:
    """The pipeline's `weights` step for start files: fetch (or copy) the experiment's start
    files (`start_values`) into `dest_dir`, check their tensors against its networks, and write
    each role's record (name, file, sha256) to `records[role]` ({} for random weights). A GAN
    experiment started from a generator file trains whole in the `train` stage, so its
    generator record also names `vgg_weights` (and its sha256): `train` depends on the record,
    not on the param, which only the adversarial stage reads otherwise."""
    starts: dict[Role, StartFile | None] = {}
    for role, value in start_values(experiment, generator).items():
        start = None if value is None else locate(value, role, dest_dir, strict=strict)
        if start is not None:
            # The file's own tensors now (a published name was checked by its table row).
            network, model = _network_shapes(experiment, role)
            fit = compare(network, file_shapes(start.path, role))
            _accepted(fit, start.name, role, strict=strict, model=model)
        whole_gan = role == "generator" and start is not None and experiment.adversarial
        write_record(records[role], start, vgg_weights if whole_gan else None)
        starts[role] = start
    return starts


_RECORD_HEADER = "# Written by `python -m stages.weights`: the file this {role} starts from.\n"


def write_record(path: Path, start: StartFile | None, vgg_weights: Path | None = None) -> None:
    """build/pretrained*.yaml: `start`'s name, file, sha256 and strictness ({} for none), and
    the `vgg_weights` file with its sha256 where given. `dvc exp show` shows them as params,
    and the training stages depend on the file."""
    role = "discriminator" if path.stem.endswith("_d") else "generator"
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {} if start is None else start.record()
    if vgg_weights is not None:
        values |= {"vgg_weights": str(vgg_weights),
                   "vgg_weights_sha256": backbones.file_sha256(Path(vgg_weights))}  # fmt: skip
    path.write_text(_RECORD_HEADER.format(role=role) + yaml.safe_dump(values, sort_keys=False))


def read_record(path: Path) -> StartFile | None:
    """The start file `write_record` wrote, once its file still has the recorded sha256."""
    if not path.is_file():
        raise ConfigError(f"{path} not found; run `dvc repro weights` (python -m stages.weights)")
    values = yaml.safe_load(path.read_text()) or {}
    if not values:
        return None
    start = StartFile(values["name"], Path(values["file"]), bool(values["strict"]))
    if not start.path.is_file() or backbones.file_sha256(start.path) != values["sha256"]:
        raise ConfigError(
            f"{start.path} is not the file {path} records (sha256 {values['sha256']}); run "
            "`dvc repro weights` or `dvc pull`"
        )
    return start


def local_starts(
    experiment: ExperimentConfig, generator: str | None, *, strict: bool
) -> dict[Role, StartFile | None]:
    """The CLI's start files: checked against the experiment's networks first (a published
    name by its table row), then a published one taken from torch's hub cache or downloaded
    there, a path used where it is."""
    check_starts(experiment, generator, strict=strict)
    return {
        role: None if value is None else locate(value, role, None, strict=strict)
        for role, value in start_values(experiment, generator).items()
    }


def weights_path(value: str) -> Path:
    """`upscale -m` / `evaluate -m`: a published generator's name stands for its verified file
    (torch's hub cache, downloaded there once with a progress bar); anything else is a path."""
    if is_published_name(value, "generator"):
        return locate(value, "generator", None).path
    return Path(value)
