"""The machinery behind every config: typed fields with help and bounds, a registry of
config classes by name (so polymorphic fields survive a YAML round trip through a
``__type__`` tag, as in DaCapo's config store), and lenient loading of DaCapo's own YAML.

Written by hand rather than with cattrs or pydantic because loading must tell two kinds of
unknown field apart: fields of DaCapo's own configs that napari-dacapo does not use
(``num_data_fetchers`` ...; listed in :data:`DACAPO_ONLY_FIELDS`) are reported and ignored,
any other is refused with the closest known field (a misspelt field must not train with its
default); and because configs stay plain frozen dataclasses that the GUI can turn into
forms without a third-party schema layer.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import logging
import numbers
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, ClassVar, TypeVar

from funlib.geometry import Coordinate, Roi

logger = logging.getLogger(__name__)

__all__ = [
    "Config",
    "ConfigError",
    "DACAPO_ONLY_FIELDS",
    "unknown_field_hint",
    "option",
    "config_class",
    "replace_configs",
    "scale_world_lengths",
    "to_dict",
    "from_dict",
]


class ConfigError(ValueError):
    """A config value is refused; the message names the field and the fix."""


_MISSING = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    *,
    help: str,
    factory: Any = _MISSING,
    min: float | None = None,
    max: float | None = None,
    choices: Sequence[Any] | None = None,
    advanced: bool = False,
    world: bool = False,
) -> Any:
    """A config field with its help text and bounds in the field's metadata.

    The help text becomes the widget tooltip and the CLI help; ``min``/``max`` are checked
    when the config is made and become the widget limits. ``world`` marks a length in
    world units (see :func:`scale_world_lengths`).
    """
    metadata = {"help": help, "min": min, "max": max, "choices": choices, "advanced": advanced,
                "world": world}
    if factory is not _MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


_REGISTRY: dict[str, type[Config]] = {}

#: Fields of DaCapo's own config classes (releases 0.2.0 to 0.3.5), by DaCapo class name,
#: that napari-dacapo does not use. Loading data tagged with that class (or untagged data
#: expected as the class it loads into) ignores them and lists them in ``ignored``. Every
#: other field that a config class does not have is refused: a misspelt field would
#: otherwise be dropped and the run trained with the field's default. DaCapo fields that we
#: use under another name are ``field_aliases`` of the class instead.
DACAPO_ONLY_FIELDS: dict[str, frozenset[str]] = {
    # Number of gunpowder PreCache workers; our trainer prepares batches as ``prefetch`` says.
    # Rejection of samples with too little ground truth; ours is ``min_masked``.
    "GunpowderTrainerConfig": frozenset({"num_data_fetchers", "gt_min_reject"}),
    # Kernel size of the prediction head (DaCapo 0.3.5).
    "HotDistanceTaskConfig": frozenset({"kernel_size"}),
}

C = TypeVar("C", bound="Config")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Base of all configs: frozen, keyword-only, validated when made."""

    name: str = option(help="A unique name for this config.")

    #: DaCapo class names that load into this class (e.g. ``GunpowderTrainerConfig``).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: DaCapo field names that load into a field of ours (e.g. ``_eval_shape_increase``).
    field_aliases: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for key in (cls.__name__, *cls.__dict__.get("aliases", ())):
            _REGISTRY[key] = cls

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"{type(self).__name__}.name must be a non-empty string.")
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            coerced = _coerce(value, hints.get(f.name, Any))
            if coerced is not value:
                object.__setattr__(self, f.name, coerced)
            _check_scalar_type(self, f, coerced, hints.get(f.name, Any))
            _check_bounds(self, f, coerced)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; raise :class:`ConfigError` naming the field and the fix."""

    def error(self, field: str, problem: str, fix: str) -> ConfigError:
        """Build a :class:`ConfigError` in the house format."""
        return ConfigError(f"{type(self).__name__} '{self.name}': {field} {problem}. {fix}")

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def replace_configs(value: Any, kind: type[C], replace: Callable[[C], Config]) -> Any:
    """``value`` (a config, or lists, tuples and dicts of them) with every config of type
    ``kind`` in it, at any depth, replaced by ``replace(config)``; what holds none is
    returned as it is (the same object)."""
    if isinstance(value, kind):
        return replace(value)
    if isinstance(value, Config):
        changes = {
            f.name: new
            for f in dataclasses.fields(value)
            if f.init
            and (new := replace_configs(old := getattr(value, f.name), kind, replace))
            is not old
        }
        return dataclasses.replace(value, **changes) if changes else value
    if isinstance(value, (list, tuple)):
        items = [replace_configs(v, kind, replace) for v in value]
        return type(value)(items) if any(a is not b for a, b in zip(items, value)) else value
    if isinstance(value, dict):
        items_ = {k: replace_configs(v, kind, replace) for k, v in value.items()}
        return items_ if any(items_[k] is not value[k] for k in value) else value
    return value


def scale_world_lengths(config: C, factor: float) -> C:
    """``config`` with its lengths in world units (fields made with ``option(world=True)``,
    e.g. a distance task's clip distance) multiplied by ``factor``.

    The napari panel trains in integer world units, the layers' scale times a power of ten
    (``world_factor``): lengths the user gives in the layers' units are scaled with it, and
    scaled back (``1 / factor``) to show a stored run's config in those units.
    """
    changes = {
        f.name: float(f"{value * factor:.12g}")  # 0.4 * 1000 is 400, not 400.00000000000006
        for f in dataclasses.fields(config)
        if f.metadata.get("world") and isinstance(value := getattr(config, f.name), (int, float))
    }
    return config.replace(**changes) if changes and factor != 1 else config


def config_class(name: str) -> type[Config]:
    """The config class registered under ``name`` (a class name or a DaCapo alias)."""
    if name not in _REGISTRY:
        import importlib

        importlib.import_module(__package__)  # registers every config class
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(
            f"Unknown config type '{name}'. Known types: {known}."
        ) from None


# -- coercion -----------------------------------------------------------------------------


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    # Cached: resolving the annotations is most of the cost of making a config, and the
    # training panel makes configs on every edit.
    return typing.get_type_hints(cls)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], optional
        return typing.Union[tuple(args)], optional
    return tp, False


def _coerce(value: Any, tp: Any) -> Any:
    """Bring YAML-ish values (lists, strings) to the declared field type, where it is
    unambiguous: Coordinates, tuples, Paths and enums. Other values pass unchanged."""
    if value is None:
        return value
    tp, _ = _strip_optional(tp)
    origin = typing.get_origin(tp)
    if tp is Coordinate:
        if isinstance(value, Coordinate):
            return value
        if isinstance(value, Sequence) and not isinstance(value, str):
            return Coordinate(value)
        return value
    if tp is Roi:
        if isinstance(value, Roi):
            return value
        if isinstance(value, Mapping):
            return Roi(value["offset"], value["shape"])
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
            return Roi(*value)  # DaCapo's (offset, shape)
        return value
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads exponent notation without a dot (learning_rate: 1e-4) as text.
        try:
            return float(value)
        except ValueError:
            return value  # reported by the field's type check
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)  # 1000.0 from a YAML or JSON writer
    if tp is Path and isinstance(value, (str, PurePath)) and not isinstance(value, Path):
        return Path(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum) and not isinstance(value, tp):
        try:
            return tp(value)
        except ValueError:
            return value  # reported by the field's own validation
    if origin in (list, tuple, Sequence) and isinstance(value, Sequence) and not isinstance(
        value, str
    ):
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [_coerce(v, inner) for v in value]
        if origin is tuple or (origin is Sequence):
            return tuple(items) if origin is tuple else list(items)
        return items
    return value


#: What a value of a plain scalar field must be, and how the error names it.
_SCALARS: dict[type, tuple[type | tuple[type, ...], str]] = {
    int: (numbers.Integral, "a whole number"),
    float: (numbers.Real, "a number"),
    bool: (bool, "true or false"),
    str: (str, "a string"),
}


def _check_scalar_type(cfg: Config, f: dataclasses.Field, value: Any, tp: Any) -> None:
    """A field declared int, float, bool or str holds one (a bool is no number here):
    otherwise the error names the field, not the line of code that trips over it later."""
    tp, _ = _strip_optional(tp)
    if value is None or tp not in _SCALARS:
        return
    kind, what = _SCALARS[tp]
    if isinstance(value, kind) and (tp is bool or not isinstance(value, bool)):
        return
    raise cfg.error(f.name, f"must be {what}, not {value!r}", f"Set {f.name} to {what}.")


def _check_bounds(cfg: Config, f: dataclasses.Field, value: Any) -> None:
    lo, hi, choices = f.metadata.get("min"), f.metadata.get("max"), f.metadata.get("choices")
    if value is None:
        return
    if choices is not None and value not in choices:
        raise cfg.error(
            f.name, f"is {value!r}", f"Choose one of {', '.join(map(repr, choices))}."
        )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if lo is not None and value < lo:
        raise cfg.error(f.name, f"must be >= {lo} (got {value})", f"Set {f.name} to at least {lo}.")
    if hi is not None and value > hi:
        raise cfg.error(f.name, f"must be <= {hi} (got {value})", f"Set {f.name} to at most {hi}.")


# -- (un)structuring -----------------------------------------------------------------------


def to_dict(value: Any) -> Any:
    """Plain YAML-safe data: configs become dicts with a ``__type__`` tag."""
    if isinstance(value, Config):
        out: dict[str, Any] = {"__type__": type(value).__name__}
        for f in dataclasses.fields(value):
            if f.metadata.get("transient"):
                continue
            out[f.name] = to_dict(getattr(value, f.name))
        return out
    if isinstance(value, Coordinate):
        return [int(v) if v is not None else None for v in value]
    if isinstance(value, Roi):
        return [to_dict(value.offset), to_dict(value.shape)]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dict(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def from_dict(
    data: Mapping[str, Any],
    expected: type[Config] | None = None,
    *,
    ignored: list[str] | None = None,
    _path: str = "",
) -> Config:
    """Build a config from plain data.

    ``__type__`` picks the class (DaCapo aliases included); without a tag, ``expected`` is
    used. Fields of DaCapo's configs that napari-dacapo does not use
    (:data:`DACAPO_ONLY_FIELDS`) are listed in ``ignored`` (as ``path.field``) and logged,
    so DaCapo's YAML still loads.

    Raises
    ------
    ConfigError
        Naming every other field that its config class does not have, each with the
        closest field it has, before any config is made; or naming the first other problem.
    """
    unknown: list[str] = []
    config = _from_dict(data, expected, ignored, _path, unknown)
    if unknown:
        many = len(unknown) > 1
        raise ConfigError(
            f"Unknown field{'s' if many else ''}: {'; '.join(unknown)}. Correct or remove "
            f"{'them' if many else 'it'}."
        )
    assert config is not None
    return config


def _from_dict(
    data: Mapping[str, Any],
    expected: type[Config] | None,
    ignored: list[str] | None,
    path: str,
    unknown: list[str],
) -> Config | None:
    """:func:`from_dict`, with the unknown fields found so far in ``unknown``: once there is
    one, nothing more is made (None is returned), only the remaining fields checked."""
    data = dict(data)
    type_name = data.pop("__type__", None)
    if type_name is not None:
        cls = config_class(type_name)
    elif expected is not None and not getattr(expected, "__abstractmethods__", None):
        cls = expected
    else:
        raise ConfigError(
            f"Config at '{path or 'top level'}' has no __type__ tag; add "
            f"'__type__: <ConfigClassName>' to it."
        )
    if expected is not None and not issubclass(cls, expected):
        raise ConfigError(
            f"'{path or 'top level'}' must be a {expected.__name__}, got {cls.__name__}."
        )
    hints = _hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    dacapo_names = (
        (type_name,) if type_name is not None else (cls.__name__, *cls.__dict__.get("aliases", ()))
    )
    dacapo_only = set().union(*(DACAPO_ONLY_FIELDS.get(n, ()) for n in dacapo_names))
    kwargs: dict[str, Any] = {}
    here = f"{path}." if path else ""
    for key, value in data.items():
        key = cls.field_aliases.get(key, key)
        if key in known:
            kwargs[key] = _structure(value, hints.get(key, Any), ignored, f"{here}{key}", unknown)
        elif key in dacapo_only:
            if ignored is not None:
                ignored.append(f"{here}{key}")
            logger.warning("%s: ignoring DaCapo's field '%s', which napari-dacapo does not use",
                           cls.__name__, f"{here}{key}")
        else:
            unknown.append(f"{here}{key} ({unknown_field_hint(cls, str(key), list(known))})")
    if unknown:
        return None
    missing = [
        name
        for name, f in known.items()
        if name not in kwargs and f.default is _MISSING and f.default_factory is _MISSING
    ]
    if missing:
        raise ConfigError(
            f"{cls.__name__} at '{path or 'top level'}' is missing required field(s): "
            f"{', '.join(missing)}."
        )
    return cls(**kwargs)


def unknown_field_hint(cls: type[Config], key: str, known: list[str]) -> str:
    """Why ``key`` is refused for ``cls`` (whose fields are ``known``), with the closest."""
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"{cls.__name__} has no such field; did you mean {close[0]}?"
    return f"{cls.__name__} has no such field; its fields are {', '.join(known)}"


def _structure(
    value: Any, tp: Any, ignored: list[str] | None, path: str, unknown: list[str]
) -> Any:
    if value is None:
        return None
    tp, _ = _strip_optional(tp)
    origin = typing.get_origin(tp)
    if isinstance(value, Mapping):
        target = tp if isinstance(tp, type) and issubclass(tp, Config) else None
        if target is not None or "__type__" in value:
            return _from_dict(value, target, ignored, path, unknown)
        if origin in (dict, Mapping):
            _, vt = (typing.get_args(tp) + (Any, Any))[:2]
            return {
                k: _structure(v, vt, ignored, f"{path}.{k}", unknown) for k, v in value.items()
            }
        return dict(value)
    if isinstance(value, (list, tuple)) and origin in (list, tuple, Sequence):
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return [
            _structure(v, inner, ignored, f"{path}[{i}]", unknown) for i, v in enumerate(value)
        ]
    return value


# -- YAML files ------------------------------------------------------------------------------


@functools.cache
def _yaml_loader() -> type:
    import yaml

    # libyaml's parser where PyYAML has it: a stored run config loads in ~2 ms instead of
    # ~15 (every prediction, validation and runs-browser refresh loads one).
    safe_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class DaCapoLoader(safe_loader):  # type: ignore[valid-type,misc]
        """Safe YAML plus the python tags DaCapo's file config store writes
        (``!!python/tuple``, ``!!python/object/apply:pathlib.PosixPath`` ...), read as plain
        data; nothing is ever executed."""

    def tuple_(loader: Any, node: Any) -> list[Any]:
        return loader.construct_sequence(node, deep=True)

    def python_object(loader: Any, suffix: str, node: Any) -> Any:
        if isinstance(node, yaml.SequenceNode):
            parts = loader.construct_sequence(node, deep=True)
            if "path" in suffix.lower():  # pathlib / upath objects: their parts
                return str(PurePath(*parts)) if parts else ""
            return parts
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        return loader.construct_scalar(node)

    DaCapoLoader.add_constructor("tag:yaml.org,2002:python/tuple", tuple_)
    DaCapoLoader.add_multi_constructor("tag:yaml.org,2002:python/", python_object)
    return DaCapoLoader


def save_config(config: Config, path: str | Path) -> Path:
    """Write ``config`` as YAML (atomically: a crash never leaves half a file)."""
    import yaml

    from ..store.atomic import atomic_write_text

    path = Path(path)
    text = yaml.safe_dump(to_dict(config), sort_keys=False)
    atomic_write_text(path, text)
    return path


def load_config(
    path: str | Path, expected: type[C] | None = None, *, ignored: list[str] | None = None
) -> C:
    """Read a config YAML written by :func:`save_config` or by DaCapo's file config store.

    Fields of DaCapo's configs that napari-dacapo does not use are accepted, logged and
    listed in ``ignored``; other unknown fields are refused (see :func:`from_dict`).
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_yaml_loader())  # noqa: S506 (safe subclass)
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist.") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"Config file {path} is not valid YAML: {e}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"Config file {path} must hold a mapping, not {type(data).__name__}.")
    if "__type__" not in data and expected is None:
        # DaCapo's store writes run configs untagged; recognise them by their fields.
        if {"task_config", "architecture_config", "trainer_config"} <= set(data):
            expected = config_class("RunConfig")  # type: ignore[assignment]
    return from_dict(data, expected, ignored=ignored)  # type: ignore[return-value]
