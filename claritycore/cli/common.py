"""Help texts the weights-taking commands share, and options made from config fields."""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import typer
from rich.markup import escape

MODEL_HELP = (
    "Weights: a ClarityCore model.pt, a BasicSR/Real-ESRGAN/ESRGAN .pth, a claritycore 0.0.5 "
    "model folder or checkpoint, or .safetensors; or a published generator's name "
    "(`claritycore models`), downloaded once into torch's hub cache and verified."
)

F = TypeVar("F", bound=Callable[..., Any])


def flag_type(hint: Any) -> type | None:
    """What a field's flag takes: bool (`--x/--no-x`), int, float, str (a `Literal`'s choices
    are checked by `schema.parse`, with its message) or Path; None for lists and mappings,
    which `--set KEY=VALUE` takes. A choice beside a type ("auto") is the flag left out."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    members = typing.get_args(hint) if union else (hint,)
    kinds = {str if typing.get_origin(m) is Literal else m for m in members}
    kinds.discard(type(None))
    if len(kinds) > 1:
        kinds.discard(str)
    kind = kinds.pop() if len(kinds) == 1 else None
    return kind if kind in (bool, int, float, str, Path) else None


def _shown(default: Any) -> str | bool:
    """A default as the help shows it (true/false as params.yaml writes them); False: none."""
    if default is None or default is dataclasses.MISSING:
        return False
    return str(default).lower() if isinstance(default, bool) else str(default)


def field_options(
    *classes: type,
    panel: str | None = None,
    only: Collection[str] | None = None,
    names: Mapping[str, str] | None = None,
    defaults: bool = True,
) -> list[inspect.Parameter]:
    """One typer option per field of the dataclasses `classes` that a flag can take
    (`flag_type`), named after it (`--batch-size`, or `names[field]`) and described by its
    `option` help; None when not given, so a default stays where it is stated. `defaults`:
    show the dataclass default in the help. A field in two classes gets the first's option."""
    params: dict[str, inspect.Parameter] = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = flag_type(hints[f.name])
            if f.name in params or kind is None or (only is not None and f.name not in only):
                continue
            flag = (names or {}).get(f.name, "--" + f.name.replace("_", "-"))
            option = typer.Option(
                None,
                f"{flag}/--no-{flag[2:]}" if kind is bool else flag,
                help=escape(f.metadata["help"]),
                show_default=_shown(f.default) if defaults else False,
                rich_help_panel=panel,
            )
            params[f.name] = inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind | None
            )
    return list(params.values())


def flagless_help(*classes: type) -> dict[str, str]:
    """The help of each field of `classes` no flag takes (lists, mappings): `--set` only."""
    return {
        f.name: f.metadata["help"]
        for cls in classes
        for f in dataclasses.fields(cls)
        if flag_type(typing.get_type_hints(cls)[f.name]) is None
    }


def with_options(*params: inspect.Parameter) -> Callable[[F], F]:
    """Give a command that takes `**fields` the options `params` (typer reads the signature);
    their values arrive in `fields`, None where not given."""

    def decorate(command: F) -> F:
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        # typer reads `__signature__`, which functions accept but their type does not declare.
        command.__signature__ = signature.replace(parameters=[*own, *params])  # type: ignore[attr-defined]
        return command

    return decorate


def given(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The options of `with_options` that were given."""
    return {k: v for k, v in fields.items() if v is not None}
