"""params.yaml: the one reader, and the one checker every section goes through.

Each module declares what its section may hold as a dict of constraints, in the style of
scikit-learn's ``utils/_param_validation.py``, and reads it with :func:`load`::

    PARAMS = {
        "preset": [Options({"fast", "tutorial"})],
        "regularization": [Interval(Real, 0, 1e6, closed="right")],
        "max_iter": [Interval(Integral, 1, 100_000, closed="both"), None],
    }
    config = params.load("train", PARAMS, path)

A key's value must satisfy one of its constraints (``None`` in the list allows null). Every
declared key is required (defaults live only in params.yaml) and an undeclared key is an
error. A nested section is a dict of constraints in place of the list. Every error is one
line of one shape::

    params.yaml: train.regularization must be a number in (0, 1e+06], got 'abc'
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import yaml

from mnist_repro.errors import MnistReproError
from mnist_repro.paths import PARAMS

__all__ = [
    "PARAMS",
    "Integral",
    "Interval",
    "ListOf",
    "MapOf",
    "Options",
    "Pattern",
    "Real",
    "load",
    "load_file",
    "read_json",
    "validate",
]


class Constraint:
    """A predicate on a value with a phrase that completes "must be ..."."""

    def is_satisfied_by(self, value: Any) -> bool:
        raise NotImplementedError

    def __str__(self) -> str:
        raise NotImplementedError


class Interval(Constraint):
    """A number of type ``Integral`` or ``Real`` in ``[left, right]`` (``closed`` picks the
    ends); bools never count as numbers, and a Real must be finite as a float (so a 400-digit
    integer is refused here rather than overflowing later). ``None`` means unbounded."""

    def __init__(
        self,
        type: type,
        left: float | None,
        right: float | None,
        *,
        closed: str = "both",
    ) -> None:
        if type not in (Integral, Real):
            raise ValueError(f"Interval type must be Integral or Real, not {type!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be both, left, right or neither, not {closed!r}")
        self.type, self.left, self.right, self.closed = type, left, right, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.type):
            return False
        try:
            number = float(value)
        except OverflowError:
            return False
        if not math.isfinite(number):
            return False
        low_ok = self.left is None or (
            value >= self.left if self.closed in ("both", "left") else value > self.left
        )
        high_ok = self.right is None or (
            value <= self.right if self.closed in ("both", "right") else value < self.right
        )
        return low_ok and high_ok

    def __str__(self) -> str:
        kind = "an integer" if self.type is Integral else "a number"
        left = "-inf" if self.left is None else f"{self.left:g}"
        right = "inf" if self.right is None else f"{self.right:g}"
        lb = "[" if self.closed in ("both", "left") and self.left is not None else "("
        rb = "]" if self.closed in ("both", "right") and self.right is not None else ")"
        return f"{kind} in {lb}{left}, {right}{rb}"


class Options(Constraint):
    """One of a fixed set of values (strings, usually)."""

    def __init__(self, options: set[Any] | frozenset[Any]) -> None:
        self.options = frozenset(options)

    def is_satisfied_by(self, value: Any) -> bool:
        return not isinstance(value, bool | list | dict) and value in self.options

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(o) for o in sorted(self.options, key=str))


class Pattern(Constraint):
    """A string matching a regular expression (in full); ``what`` names it for the user."""

    def __init__(self, regex: str, what: str) -> None:
        self.regex, self.what = re.compile(regex), what

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, str) and self.regex.fullmatch(value) is not None

    def __str__(self) -> str:
        return self.what


class ListOf(Constraint):
    """A list of at least ``min_len`` items, each satisfying ``item``."""

    def __init__(self, item: Constraint, *, min_len: int = 1, max_len: int = 1000) -> None:
        self.item, self.min_len, self.max_len = item, min_len, max_len

    def is_satisfied_by(self, value: Any) -> bool:
        return (
            isinstance(value, list)
            and self.min_len <= len(value) <= self.max_len
            and all(self.item.is_satisfied_by(v) for v in value)
        )

    def __str__(self) -> str:
        return f"a list of {self.min_len} to {self.max_len} items, each {self.item}"


class MapOf:
    """A mapping whose keys satisfy ``key`` and whose values are sections of ``value``
    (a dict of constraints); checked recursively with full key paths in the errors."""

    def __init__(self, key: Constraint, value: Mapping[str, Any], *, min_len: int = 1) -> None:
        self.key, self.value, self.min_len = key, value, min_len


Spec = Mapping[str, Any]  # key -> list of constraints (None allowed) | nested Spec | MapOf


def _show(value: Any) -> str:
    """The offending value for the message, kept to one short line."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"a {len(str(abs(value)))}-digit integer"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(spec: Spec, data: Any, where: str, source: str = str(PARAMS)) -> dict[str, Any]:
    """Check ``data`` (the section at dotted key ``where``) against ``spec``; return a copy.

    Raises :class:`MnistReproError` with one line naming ``source`` and the full key.
    """
    if not isinstance(data, Mapping):
        raise MnistReproError(f"{source}: {where} must be a mapping, got {_show(data)}")
    unknown = sorted(str(k) for k in data if k not in spec)
    if unknown:
        known = ", ".join(spec)
        raise MnistReproError(f"{source}: {where}.{unknown[0]}: unknown key (known: {known})")
    result: dict[str, Any] = {}
    for key, rule in spec.items():
        path = f"{where}.{key}"
        if key not in data:
            raise MnistReproError(f"{source}: {path}: missing")
        value = data[key]
        if isinstance(rule, MapOf):
            if not isinstance(value, Mapping) or len(value) < rule.min_len:
                raise MnistReproError(f"{source}: {path} must be a non-empty mapping")
            for sub_key in value:
                if not rule.key.is_satisfied_by(sub_key):
                    raise MnistReproError(
                        f"{source}: {path}: key {_show(sub_key)} must be {rule.key}"
                    )
            result[key] = {
                k: validate(rule.value, v, f"{path}.{k}", source) for k, v in value.items()
            }
        elif isinstance(rule, Mapping):
            result[key] = validate(rule, value, path, source)
        else:
            allowed = [c for c in rule if c is not None]
            if value is None and None in rule:
                result[key] = None
                continue
            if not any(c.is_satisfied_by(value) for c in allowed):
                options = " or ".join(str(c) for c in allowed)
                if None in rule:
                    options += " or null"
                raise MnistReproError(f"{source}: {path} must be {options}, got {_show(value)}")
            result[key] = value
    return result


def load_file(path: str | os.PathLike[str] = PARAMS) -> dict[str, Any]:
    """The whole params file as a dict, with a one-line error if it is missing or broken."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise MnistReproError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise MnistReproError(f"{path}: not valid YAML{where}") from None
    except OSError as exc:
        raise MnistReproError(f"{path}: cannot read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise MnistReproError(f"{path}: expected a mapping of sections")
    return data


def load(section: str, spec: Spec, path: str | os.PathLike[str] = PARAMS) -> dict[str, Any]:
    """``params.yaml[section]``, checked against ``spec``."""
    data = load_file(path)
    if section not in data:
        raise MnistReproError(f"{path}: no '{section}' section")
    return validate(spec, data[section], section, str(path))


def read_json(path: str | os.PathLike[str], made_by: str) -> dict[str, Any]:
    """A JSON file the ``made_by`` stage wrote, with a one-line error if absent or broken."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MnistReproError(f"{path}: not found (run the {made_by} stage first)") from None
    except json.JSONDecodeError as exc:
        raise MnistReproError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
