"""Options as annotated class attributes: `sign: Literal["abs", "relu"] = "abs"` declares option `sign`.

A registered class (explainer, scorer, metric, architecture, dataset) lists its options the way a dataclass lists
fields. `Configurable(**options)` validates names and types and converts the strings the CLI passes
(`--set per_dim=true`), so every plugin gets the same errors for free.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

from xgen.errors import XgenError, did_you_mean

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Option:
    """One declared option: its name, type annotation and default value."""

    name: str
    annotation: Any
    default: Any

    @property
    def type_name(self) -> str:
        return _type_name(self.annotation)


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(annotation))
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _coerce(value: Any, annotation: Any) -> Any:
    """Convert `value` (a Python value or a CLI string) to `annotation`, or raise ValueError."""
    origin = get_origin(annotation)
    if annotation is Any:
        return value
    if origin is Literal:
        choices = get_args(annotation)
        if value in choices:
            return value
        for choice in choices:
            if isinstance(value, str) and not isinstance(choice, str) and str(choice) == value:
                return choice
        raise ValueError(f"expected one of {', '.join(repr(c) for c in choices)}")
    if origin in (Union, types.UnionType):
        members = get_args(annotation)
        if value is None and type(None) in members:
            return None
        # "none" means None before any member is tried (else `str | None` keeps it), unless a Literal offers "none".
        none_word = isinstance(value, str) and value.lower() in {"none", "null"}
        offered = none_word and any(get_origin(m) is Literal and value in get_args(m) for m in members)
        if none_word and type(None) in members and not offered:
            return None
        errors = []
        for member in members:
            if member is type(None):
                continue
            try:
                return _coerce(value, member)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if errors else "invalid value")
    if annotation is type(None):
        if value is None or (isinstance(value, str) and value.lower() in {"none", "null"}):
            return None
        raise ValueError("expected None")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError("expected true or false")
    if annotation is int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ValueError("expected an integer")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError("expected a number")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError("expected a string")
    if origin in (tuple, list):
        item = get_args(annotation)[0] if get_args(annotation) else Any
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if isinstance(value, (list, tuple)):
            return origin(_coerce(v, item) for v in value)
        raise ValueError("expected a comma-separated list")
    if isinstance(annotation, type) and isinstance(value, annotation):
        return value
    raise ValueError(f"expected {_type_name(annotation)}")


class Configurable:
    """Base of everything a plugin registers: options are the annotated class attributes with a default."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    kind: ClassVar[str] = "plugin"

    def __init__(self, **options: Any) -> None:
        declared = self.options()
        for key, value in options.items():
            attr = key.replace("-", "_")
            if attr not in declared:
                hint = did_you_mean(attr, declared) if declared else " It takes no options."
                raise XgenError(f"{self.kind} '{self.name}' has no option '{key}'.{hint}")
            option = declared[attr]
            try:
                coerced = _coerce(value, option.annotation)
            except ValueError as exc:
                raise XgenError(f"option '{attr}' of {self.kind} '{self.name}' got {value!r}: {exc}.") from None
            setattr(self, attr, coerced)
        self.validate()

    def validate(self) -> None:
        """Check combinations of options; raise XgenError with one sentence. Called by __init__."""

    @classmethod
    def options(cls) -> dict[str, Option]:
        """The declared options of this class, in declaration order, base classes first."""
        return dict(_declared_options(cls))

    def config(self) -> dict[str, Any]:
        """The current option values, as plain data (what a checkpoint records)."""
        return {name: getattr(self, name) for name in self.options()}


@functools.cache
def _declared_options(cls: type) -> dict[str, Option]:
    """Computed once per class: resolving type hints on every construction would dominate small explain calls."""
    found: dict[str, Option] = {}
    for klass in reversed(cls.__mro__):
        annotations = inspect.get_annotations(klass)
        if not annotations:
            continue
        hints = typing.get_type_hints(klass, include_extras=False)
        for attr in annotations:
            if attr.startswith("_") or attr not in klass.__dict__:
                continue
            hint = hints.get(attr)
            if get_origin(hint) is ClassVar or hint is ClassVar:
                continue
            found[attr] = Option(attr, hint, getattr(cls, attr))
    return found
