"""Config dataclasses <-> magicgui forms: the only adapter between configs and widgets.

A form is built from a config class's fields (``dataclasses.fields`` and
``typing.get_type_hints``) with the public :func:`magicgui.widgets.create_widget`: the
field's ``help`` becomes the tooltip, ``min``/``max`` become the limits, ``choices`` (or a
``Literal``) a combo box, ``advanced`` fields go into a section shown on demand. Nested
configs become groups; a field typed with an abstract config base (a task, an augment)
becomes a choice of its concrete classes. A form gives a *new* config back with
``ConfigCls(**values)``, so the config's own checks run and configs stay immutable.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable, Sequence
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, Label

from napari_dacapo.experiments.configs import Config

from .form_fields import FieldEditor, FormError, strip_optional

__all__ = [
    "ConfigChoiceForm",
    "ConfigForm",
    "ConfigListForm",
    "FormError",
    "concrete_subclasses",
    "title",
]


def title(cls: type) -> str:
    """``DistanceTaskConfig`` -> ``"distance task"``."""
    name = cls.__name__.removesuffix("Config")
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).lower()


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Config)


def _is_concrete(cls: type[Config]) -> bool:
    """A config class is concrete when every ``ClassVar`` its bases declare (the type it
    builds, e.g. ``task_type``) has a value."""
    declared = {
        name
        for klass in cls.__mro__
        for name, hint in vars(klass).get("__annotations__", {}).items()
        if "ClassVar" in str(hint)
    }
    return all(hasattr(cls, name) for name in declared)


def concrete_subclasses(base: type[Config]) -> list[type[Config]]:
    """The concrete config classes deriving from ``base`` (``base`` itself included)."""
    import napari_dacapo.experiments  # noqa: F401  (registers every config class)

    found, queue = [], [base]
    while queue:
        cls = queue.pop(0)
        if _is_concrete(cls) and cls not in found:
            found.append(cls)
        queue.extend(cls.__subclasses__())
    return found


# -- forms ------------------------------------------------------------------------------------


class ConfigForm:
    """A form for one config class.

    Parameters
    ----------
    config_class
        The (concrete) config class.
    value
        A config to show; default: the fields' defaults.
    fields
        Only these fields (default: all); :meth:`values` then gives a partial dict.
    hidden
        Fields not shown; their values come from the last config set (default ``name``).
    label
        Label of the form when it is nested in another form.
    """

    def __init__(
        self,
        config_class: type[Config],
        value: Config | None = None,
        *,
        fields: Sequence[str] | None = None,
        hidden: Sequence[str] = ("name",),
        label: str = "",
    ) -> None:
        self.config_class = config_class
        hints = typing.get_type_hints(config_class)
        self._hidden = {n: _default_name(config_class) if n == "name" else None for n in hidden}
        self._editors: dict[str, Any] = {}
        basic, advanced = [], []
        for f in dataclasses.fields(config_class):
            if not f.init or f.metadata.get("transient") or f.name in self._hidden:
                continue
            if fields is not None and f.name not in fields:
                continue
            editor = _editor(f, hints[f.name])
            self._editors[f.name] = editor
            (advanced if f.metadata.get("advanced") else basic).append(editor.widget)
        self.advanced = Container(widgets=advanced, visible=False)
        toggle = CheckBox(text="show advanced settings", visible=bool(advanced))
        toggle.changed.connect(lambda on: setattr(self.advanced, "visible", on))
        self.widget = Container(
            widgets=[*basic, toggle, self.advanced], label=label, tooltip=_doc(config_class)
        )
        self.changed = self.widget.changed
        self.set_value(value if value is not None else _defaults(config_class))

    @property
    def native(self) -> Any:
        return self.widget.native

    def values(self) -> dict[str, Any]:
        """The shown fields' values (raises :class:`FormError` for unreadable text)."""
        return {name: editor.get() for name, editor in self._editors.items()}

    def value(self, **extra: Any) -> Config:
        """A new config from the form, with ``extra`` fields set (raises
        :class:`FormError`, or the config's
        :class:`~napari_dacapo.experiments.configs.ConfigError`)."""
        hidden = {k: v for k, v in self._hidden.items() if v is not None}
        return self.config_class(**{**hidden, **self.values(), **extra})

    def set_value(self, config: Config | dict[str, Any]) -> None:
        """Show ``config`` (a config of this class, or a dict of some of its fields)."""
        data = config if isinstance(config, dict) else {
            f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init
        }
        for name in self._hidden:
            if name in data:
                self._hidden[name] = data[name]
        with self.widget.changed.blocked():
            for name, editor in self._editors.items():
                if name in data:
                    editor.set(data[name])
        self.widget.changed.emit(self.widget)


class ConfigChoiceForm:
    """A choice of concrete config classes (e.g. the task) and the form of the chosen one.

    Parameters
    ----------
    base
        The abstract config class; the choices are its concrete subclasses.
    defaults
        ``{class: factory}`` giving the config shown when a class is chosen (classes
        without a factory show their field defaults); also restricts and orders the
        choices when given.
    """

    def __init__(
        self,
        base: type[Config],
        defaults: dict[type[Config], Callable[[], Config]] | None = None,
        *,
        label: str = "",
        optional: bool = False,
    ) -> None:
        self.defaults = defaults or {}
        classes = list(self.defaults) or concrete_subclasses(base)
        choices: list[tuple[str, Any]] = [(title(c), c) for c in classes]
        if optional:
            choices.insert(0, ("none", None))
        self.kind = ComboBox(
            name="kind", label="type", choices=choices, tooltip=_doc(base),
            value=None if optional else classes[0],
        )
        self.form: ConfigForm | None = None
        self.widget = Container(widgets=[self.kind], label=label)
        self.changed = self.widget.changed
        self.kind.changed.connect(self._on_kind_changed)
        self._show(self.kind.value, None)

    @property
    def native(self) -> Any:
        return self.widget.native

    def _show(self, cls: type[Config] | None, value: Config | None) -> None:
        if self.form is not None:
            self.widget.remove(self.form.widget)
            self.form = None
        if cls is None:
            return
        factory = self.defaults.get(cls)
        self.form = ConfigForm(cls, value or (factory() if factory else None))
        self.widget.append(self.form.widget)

    def _on_kind_changed(self, cls: type[Config] | None) -> None:
        self._show(cls, None)

    def value(self) -> Config | None:
        return None if self.form is None else self.form.value()

    def set_value(self, config: Config | None) -> None:
        with self.kind.changed.blocked():
            self.kind.value = None if config is None else type(config)
        self._show(None if config is None else type(config), config)
        self.widget.changed.emit(self.widget)


class ConfigListForm:
    """A list of configs of one family (e.g. augments): one switchable form per concrete
    class. The list keeps its order (a class switched on goes last); a list with two
    configs of one class keeps the first."""

    def __init__(self, base: type[Config], *, label: str = "") -> None:
        self._forms: dict[type[Config], tuple[CheckBox, ConfigForm]] = {}
        self._order: list[type[Config]] = []
        rows: list[Any] = []
        for cls in concrete_subclasses(base):
            form = ConfigForm(cls)
            form.widget.visible = False
            use = CheckBox(text=title(cls), tooltip=_doc(cls))
            use.changed.connect(lambda on, c=cls: self._on_use_changed(c, on))
            self._forms[cls] = (use, form)
            rows += [use, form.widget]
        self.widget = Container(widgets=rows or [Label(value="none available")], label=label)
        self.changed = self.widget.changed

    @property
    def native(self) -> Any:
        return self.widget.native

    def _on_use_changed(self, cls: type[Config], on: bool) -> None:
        self._forms[cls][1].widget.visible = on
        if cls in self._order:
            self._order.remove(cls)
        if on:
            self._order.append(cls)

    def value(self) -> list[Config]:
        return [self._forms[cls][1].value() for cls in self._order]

    def set_value(self, configs: Sequence[Config]) -> None:
        given: dict[type[Config], Config] = {}
        for config in configs:
            given.setdefault(type(config), config)
        with self.widget.changed.blocked():
            for cls, (use, form) in self._forms.items():
                use.value = cls in given
                if cls in given:
                    form.set_value(given[cls])
        self._order = list(given)
        self.widget.changed.emit(self.widget)


class _Nested:
    """A nested config field: a group, switchable when the field is optional."""

    def __init__(self, f: dataclasses.Field, cls: type[Config], optional: bool) -> None:
        label = f.name.replace("_", " ")
        tooltip = f.metadata.get("help", "")
        if _is_concrete(cls) and not optional:
            self.form: Any = ConfigForm(cls, label=label)
        else:
            self.form = ConfigChoiceForm(cls, label=label, optional=optional)
        self.widget = self.form.widget
        self.widget.tooltip = tooltip

    def get(self) -> Any:
        return self.form.value()

    def set(self, value: Any) -> None:
        self.form.set_value(value)


class _NestedList(_Nested):
    def __init__(self, f: dataclasses.Field, base: type[Config]) -> None:
        self.form = ConfigListForm(base, label=f.name.replace("_", " "))
        self.widget = self.form.widget
        self.widget.tooltip = f.metadata.get("help", "")


def _editor(f: dataclasses.Field, hint: Any) -> Any:
    tp, optional = strip_optional(hint)
    if _is_config(tp):
        return _Nested(f, tp, optional)
    args = typing.get_args(tp)
    if typing.get_origin(tp) is list and args and _is_config(args[0]):
        return _NestedList(f, args[0])
    return FieldEditor(f, hint)


def _defaults(cls: type[Config]) -> dict[str, Any]:
    """The fields' declared defaults (fields without one keep an empty widget)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _default_name(cls: type[Config]) -> str:
    return title(cls).replace(" ", "_")


def _doc(cls: type) -> str:
    return (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
