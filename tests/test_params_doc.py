"""Each option is described once, in its field's `option` help: params.yaml's comments and the
docs' key tables are made from it (`claritycore.params_doc`), so they cannot drift."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Literal

import pytest

from claritycore.config import (
    AdversarialConfig,
    DataOptions,
    DegradationConfig,
    EvaluateOptions,
    ExtractOptions,
    TrainingConfig,
    TrainOptions,
)
from claritycore.models import config_classes
from claritycore.params_doc import FILES, TABLES, render_params, render_tables, yaml_value
from claritycore.schema import field_help
from tests.committed import committed_text

DESCRIBED = [
    DataOptions, ExtractOptions, TrainingConfig, TrainOptions, EvaluateOptions, DegradationConfig,
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


@pytest.mark.parametrize("name", FILES)
def test_committed_file_is_the_generated_one(name):
    text = committed_text(name)
    assert FILES[name](text) == text, f"{name} is stale: run `python -m claritycore.params_doc`"


def test_params_yaml_comments_are_remade_from_the_help():
    """A stale comment is rewritten and a missing key put back; the rest is kept."""
    text = committed_text("params.yaml")
    loss = "# pixel loss: l1 | l2 | charbonnier"
    gamma = "  lr_gamma: null      # multistep: factor applied at each milestone, e.g. 0.5\n"
    assert loss in text and gamma in text
    assert render_params(text.replace(loss, "# l1, l2").replace(gamma, "")) == text


def test_params_yaml_shows_degradation_defaults_and_gan_presets_values():
    text = committed_text("params.yaml")
    assert "  d_num_feat: null         # discriminator base channels (64)\n" in text
    assert "# weight of the generator's GAN loss: higher = more (and more\n" in text
    assert "# hallucinated) texture (ESRGAN 0.005, Real-ESRGAN 0.1)\n" in text
    assert "  blur_sigma2: null           # [min, max] Gaussian sigma, > 0 ([0.2, 1.5])\n" in text


def test_docs_tables_are_made_from_the_help_and_values():
    pages = {name: committed_text(name) for name in FILES if name.endswith(".md")}
    marked = {table: [n for n, text in pages.items() if f"params-table: {table} " in text]
              for table in TABLES}  # fmt: skip
    assert marked == {"degradation": ["docs/real-world.md"], "adversarial": ["docs/perceptual.md"]}
    degradation = pages["docs/real-world.md"]
    # Twins with the same help share a row, their defaults shown once where they agree.
    sigma = "| `blur_sigma`, `blur_sigma2` | `[0.2, 3.0]` / `[0.2, 1.5]` | [min, max] Gaussian"
    assert sigma in degradation
    assert "| `sinc_prob`, `sinc_prob2` | `0.1` | probability of a sinc " in degradation
    jpeg = "| `jpeg_range2` | `[30.0, 95.0]` | [min, max] JPEG quality of the final step, 1..100 |"
    assert jpeg in degradation
    assert "| `gan_type` | `ragan` | `vanilla` | ragan (ESRGAN's" in pages["docs/perceptual.md"]
    stale = degradation.replace(sigma, "| `blur_sigma` | 3 | sigma")
    assert render_tables(stale) == degradation


def test_yaml_value_is_one_line_of_yaml():
    values = [None, True, 0.5, 1e-7, "auto", [0.9, 0.99], {"conv5_4": 1.0}, []]
    assert [yaml_value(v) for v in values] == [
        "null", "true", "0.5", "1.0e-07", "auto", "[0.9, 0.99]", "{conv5_4: 1.0}", "[]",
    ]  # fmt: skip
