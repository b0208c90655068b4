"""Frozen-dataclass configs: YAML/JSON is only their saved form; unknown keys are errors.

A stage's options are one frozen dataclass deriving from `Config`. `from_dict` converts
plain data (from YAML, JSON or `key=value` overrides) into it, checking every key and
value against the field types, and names the offending key path on error.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import json
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

from leanvision.core.errors import ConfigError, ConfigValueError

_NoneType = type(None)


def _suggest(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"(known: {', '.join(known)}){hint}"


E = TypeVar("E", bound=enum.Enum)


def as_enum(kind: type[E], value: object, *, what: str | None = None, where: str = "") -> E:
    """`value` (a member or its string) as a member of `kind`: the one enum conversion of
    configs, CLI options and API arguments. ConfigError when it is none: "unknown {what}
    'x' (known: a, b)" for a named option, else "{where}: 'x' is not one of [a, b]"."""
    try:
        return kind(value)
    except ValueError:
        known = [m.value for m in kind]
        if what is not None:
            raise ConfigError(f"unknown {what} {value!r} (known: {', '.join(map(str, known))})") from None
        raise ConfigError(f"{where}: {value!r} is not one of {known}") from None


def _convert(value: Any, hint: Any, where: str) -> Any:
    """Convert plain data `value` to the type `hint`, or raise ConfigError at `where`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and _NoneType in args:
            return None
        errors = []
        for arg in (a for a in args if a is not _NoneType):
            try:
                return _convert(value, arg, where)
            except ConfigError as exc:
                errors.append(exc.message)
        raise ConfigError(f"{where}: {value!r} fits none of {hint}: {'; '.join(errors)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if isinstance(hint, type) and issubclass(hint, Config):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping of {hint.__name__} options, got {value!r}")
        return hint.from_dict(value, where=where)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return as_enum(hint, value, where=where)
    if origin is tuple or origin is list:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            items = [_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))]
        else:
            item_hint = args[0] if args else Any
            items = [_convert(v, item_hint, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_hint, val_hint = args if args else (Any, Any)
        return {
            _convert(k, key_hint, where): _convert(v, val_hint, f"{where}.{k}") for k, v in value.items()
        }
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    raise TypeError(f"{where}: unsupported config field type {hint!r}")


def _plain(value: Any) -> Any:
    """A config value as plain JSON/YAML data."""
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _parse_scalar(text: str) -> Any:
    """`key=value` override values are YAML scalars or flow lists: 0.01, true, [1, 2], abc."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _enum_fields(cls: type) -> tuple[tuple[str, type[enum.Enum]], ...]:
    """(name, enum type) of every field typed `SomeEnum` or `SomeEnum | None`."""
    found = []
    for name, hint in typing.get_type_hints(cls).items():
        kinds = [a for a in (typing.get_args(hint) or (hint,)) if isinstance(a, type) and issubclass(a, enum.Enum)]
        if len(kinds) == 1:
            found.append((name, kinds[0]))
    return tuple(found)


def _coerce_enums(config: Config) -> None:
    """Turn enum fields given as their string values (Python callers, `dataclasses.replace`)
    into members, as `from_dict` does: the one place this happens for every Config."""
    cls = type(config)
    if "_enum_fields_cache" not in cls.__dict__:
        cls._enum_fields_cache = _enum_fields(cls)
    for name, kind in cls._enum_fields_cache:
        value = getattr(config, name, None)
        if value is not None and not isinstance(value, kind):
            try:
                object.__setattr__(config, name, kind(value))
            except ValueError:
                raise ConfigValueError(f"{name} must be one of {[m.value for m in kind]}, got {value!r}") from None


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every options dataclass. Subclasses are `@dataclass(frozen=True)`.

    Enum fields accept their string values however the config is built (`from_dict`, a
    direct call, `dataclasses.replace`): every subclass's `__post_init__` first converts
    them (`_coerce_enums`), then runs the subclass's own checks.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")

        def __post_init__(self: Config) -> None:
            _coerce_enums(self)
            if own is not None:
                own(self)
            else:
                inherited = getattr(super(cls, self), "__post_init__", None)
                if inherited is not None:
                    inherited()

        cls.__post_init__ = __post_init__

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        """Build from plain data; unknown keys, missing required keys and bad types raise."""
        where = where or cls.__name__
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = [k for k in data if k not in fields]
        if unknown:
            raise ConfigError(f"{where}: unknown key '{unknown[0]}' {_suggest(unknown[0], list(fields))}")
        kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
        missing = [
            name for name, f in fields.items()
            if name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"{where}: missing required key '{missing[0]}'")
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Self:
        import yaml

        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", path=path) from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {str(exc).splitlines()[0]}", path=path) from None
        if not isinstance(data, Mapping):
            raise ConfigError("expected a mapping of options at the top level", path=path)
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(exc.message, path=path) from None

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Self:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", path=path) from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON: {exc}", path=path) from None
        if not isinstance(data, Mapping):
            raise ConfigError("expected a JSON object", path=path)
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(exc.message, path=path) from None

    def to_yaml(self, path: str | os.PathLike[str]) -> None:
        import yaml

        from leanvision.core.io import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    def to_json(self, path: str | os.PathLike[str]) -> None:
        from leanvision.core.io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def with_overrides(self, overrides: Sequence[str]) -> Self:
        """Apply `key=value` overrides (dotted keys for nested options), re-validating."""
        data = self.to_dict()
        for item in overrides:
            key, sep, text = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"override '{item}' is not of the form key=value")
            node = data
            parts = key.split(".")
            for depth, part in enumerate(parts[:-1]):
                child = node.get(part) if isinstance(node, dict) else None
                if not isinstance(child, dict):
                    known = list(node) if isinstance(node, dict) else []
                    raise ConfigError(
                        f"override '{item}': '{'.'.join(parts[: depth + 1])}' is not a group "
                        f"of options {_suggest(part, known)}"
                    )
                node = child
            if parts[-1] not in node:
                raise ConfigError(f"override '{item}': unknown key '{key}' {_suggest(parts[-1], list(node))}")
            node[parts[-1]] = _parse_scalar(text)
        return type(self).from_dict(data)


def recipe_path(name: str | os.PathLike[str]) -> Path:
    """A recipe file: `name` if it exists, else the recipe of that name shipped with leanvision
    (`s0_cervical_retinanet` or `s0_cervical_retinanet.yaml`)."""
    path = Path(name)
    if path.exists():
        return path
    import importlib.resources

    builtin = importlib.resources.files("leanvision") / "configs" / (path.name if path.suffix else f"{path.name}.yaml")
    if builtin.is_file():
        return Path(str(builtin))
    return path  # missing: reading it raises the one-line error naming it
