"""One path from a YAML/JSON mapping to a validated frozen dataclass.

Every params section (`config.py`) and every model config (`models/`) is parsed by `parse`:
unknown keys are refused with the valid ones listed, missing required keys are named, and each
value is checked against its field's annotation (a `Literal` lists the choices; lists become
tuples, strings become Paths). Range checks stay in each dataclass's `__post_init__`.
What users write (params.yaml, `--set` values) is read by `load_yaml`, so `2e-4` is a number.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from claritycore.errors import ConfigError

# The upscaling factors every part supports: stores, models, presets, metrics.
SCALES = (2, 3, 4, 8)

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, which reads YAML 1.1: there a float needs a dot and a signed
    exponent, so `2e-4`, `1E5` and DVC's `1e-05` (what `-S overrides.lr=1e-5` writes) would be
    strings. YAML 1.2, and DVC, read them as numbers: so does this loader."""


# YAML 1.2's floats with an exponent; those without one, ints, bools and null resolve as before.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str, where: str) -> Any:
    """YAML a user wrote (a params file, a `--set` value), numbers read as YAML 1.2 reads them;
    a one-line ConfigError naming `where` if it is not YAML."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        # One line: PyYAML's message spans several, with the offending line and a caret.
        raise ConfigError(f"{where} is not valid YAML: {' '.join(str(error).split())}") from None


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def option(
    default: Any = dataclasses.MISSING, *, help: str, factory: Any = dataclasses.MISSING
) -> Any:
    """A dataclass field with its description: the one text params.yaml's comments, the CLI's
    help and the docs' key tables are made from (`field_help`)."""
    return dataclasses.field(default=default, default_factory=factory, metadata={"help": help})


def field_help(cls: type) -> dict[str, str]:
    """Each init field of the dataclass `cls` with its `option` help ("" where it has none)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.init}


def check_keys(cls: type, keys: typing.Iterable[str], where: str) -> None:
    """ConfigError for any key that is not an init field of the dataclass `cls`."""
    valid = field_names(cls)
    for key in keys:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}.{hint} Valid keys: {', '.join(valid)}")


def parse(cls: type[T], values: Mapping[str, Any] | None, where: str) -> T:
    """`cls(**values)` with every key and value checked; `where` names the section in errors."""
    if values is not None and not isinstance(values, Mapping):
        raise ConfigError(f"{where} must be a mapping of key: value, got {values!r}")
    values = dict(values or {})
    check_keys(cls, values, where)
    hints = typing.get_type_hints(cls)
    required = [
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]  # `cls` is a dataclass type
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in values]
    if missing:
        raise ConfigError(f"{where} lacks {', '.join(missing)}")
    return cls(**{k: convert(v, hints[k], f"{where}.{k}") for k, v in values.items()})


def convert(value: Any, hint: Any, name: str) -> Any:
    """`value` as the annotation `hint` wants it, or a ConfigError naming `name`."""
    result = _convert(value, hint)
    if result is _INVALID:
        raise ConfigError(f"{name} is {value!r}; expected {describe(hint)}")
    return result


_INVALID = object()


def _convert(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in sorted(args, key=lambda a: a is not type(None)):  # None first
            result = _convert(value, option)
            if result is not _INVALID:
                return result
        return _INVALID
    if origin is Literal:
        return value if any(value == a and type(value) is type(a) for a in args) else _INVALID
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return _INVALID
        kinds = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
        if len(kinds) != len(value):
            return _INVALID
        items = [_convert(v, k) for v, k in zip(value, kinds, strict=True)]
        return _INVALID if _INVALID in items else tuple(items)
    if origin in (dict, Mapping):
        return dict(value) if isinstance(value, Mapping) else _INVALID
    if hint is type(None):
        return None if value is None else _INVALID
    if hint is bool:
        return value if isinstance(value, bool) else _INVALID
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _INVALID
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else _INVALID
    if hint is Path:
        return Path(value) if isinstance(value, (str, Path)) else _INVALID
    return value if isinstance(value, hint) else _INVALID


def describe(hint: Any) -> str:
    """A type annotation in words, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin is tuple:
        count = "" if args[-1] is Ellipsis else f"{len(args)} "
        if typing.get_origin(args[0]) is Literal:
            return f"a list of {count}values from " + ", ".join(map(str, choices(args[0])))
        plural = {int: "integers", float: "numbers", str: "strings"}.get(args[0], "values")
        return f"a list of {count}{plural}"
    names = {type(None): "null", bool: "true/false", int: "an integer", float: "a number"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def choices(hint: Any) -> tuple[Any, ...]:
    """The values of a `Literal` annotation, e.g. the valid losses."""
    return typing.get_args(hint)


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain YAML/JSON data: tuples as lists, Paths as strings."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}


def require(condition: bool, message: str) -> None:
    """ConfigError(`message`) unless `condition`: the range checks of `__post_init__`."""
    if not condition:
        raise ConfigError(message)
