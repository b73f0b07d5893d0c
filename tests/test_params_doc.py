"""Each option is described once, in its field's `option` help."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Literal

import pytest

from claritycore.config import (
    AdversarialConfig,
    DataParams,
    DegradationConfig,
    EvalOptions,
    ExtractParams,
    RunOptions,
    TrainingConfig,
)
from claritycore.models import config_classes
from claritycore.schema import field_help

DESCRIBED = [
    DataParams, ExtractParams, TrainingConfig, RunOptions, EvalOptions, DegradationConfig,
    AdversarialConfig, *config_classes(),
]  # fmt: skip


@pytest.mark.parametrize("cls", DESCRIBED, ids=lambda cls: cls.__name__)
def test_every_field_has_its_help(cls):
    helps = field_help(cls)
    assert list(helps) == [f.name for f in dataclasses.fields(cls)]
    assert [name for name, text in helps.items() if not text.strip()] == []


@pytest.mark.parametrize("cls", DESCRIBED, ids=lambda cls: cls.__name__)
def test_the_help_of_a_choice_names_every_choice(cls):
    """`loss: l1 | l2 | charbonnier`: a choice added to the Literal must be described too."""
    hints = typing.get_type_hints(cls)
    for name, text in field_help(cls).items():
        hint = hints[name]
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        for member in typing.get_args(hint) if union else (hint,):
            if typing.get_origin(member) is Literal:
                missing = [c for c in typing.get_args(member) if str(c) not in text]
                assert not missing, f"{cls.__name__}.{name}'s help does not name {missing}"
