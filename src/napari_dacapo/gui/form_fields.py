"""One config field as a magicgui widget: the widget type from the field's type and
metadata (``help`` -> tooltip, ``min``/``max`` -> limits, ``choices`` or ``Literal`` ->
combo box), and the codec between the widget's value and the field's value.

Numbers, flags and choices get spin boxes, check boxes and combo boxes; an optional
number reads "none" at the bottom of its range. Coordinates, lists and other literals are
edited as text (``"64, 64"``, ``"[(2, 2), (2, 2)]"``, ``"membrane, mito"``).
"""

from __future__ import annotations

import ast
import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

from funlib.geometry import Coordinate
from magicgui.widgets import create_widget

__all__ = ["FieldEditor", "FormError", "strip_optional"]

_INT_LIMIT = 2**31 - 1
_FLOAT_LIMIT = 1e12


class FormError(ValueError):
    """A form field holds text that is not a value of its type; names the field and fix."""


def strip_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; other types -> ``(tp, False)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


class FieldEditor:
    """One field's widget (:attr:`widget`) with its value codec (:meth:`get`, :meth:`set`)."""

    def __init__(self, f: dataclasses.Field, hint: Any) -> None:
        self.name = f.name
        tp, self.optional = strip_optional(hint)
        meta = f.metadata
        lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
        if typing.get_origin(tp) is Literal:
            choices = choices or typing.get_args(tp)
        limits = [f">= {lo}"] * (lo is not None) + [f"<= {hi}"] * (hi is not None)
        tooltip = meta.get("help", "") + (f" ({', '.join(limits)})" if limits else "")
        options: dict[str, Any] = {"tooltip": tooltip}
        self.parse: Callable[[str], Any] | None = None
        self.format: Callable[[Any], str] = str
        if choices:
            self.kind = "choice"
            values = list(choices) + ([None] if self.optional else [])
            options["choices"] = [(("" if c is None else str(c)), c) for c in values]
            widget_type, annotation = "ComboBox", None
        elif tp is bool:
            self.kind, widget_type, annotation = "bool", "CheckBox", bool
        elif tp is int:
            # An optional number is a spin box one below its minimum, which reads "none".
            self.kind, widget_type, annotation = "int", "SpinBox", int
            lowest = int(lo) if lo is not None else -_INT_LIMIT
            self.none_value = lowest - 1 if self.optional else None
            options.update(min=lowest - self.optional,
                           max=int(hi) if hi is not None else _INT_LIMIT)
        elif tp is float and not self.optional:
            self.kind, widget_type, annotation = "float", "FloatSpinBox", float
            options.update(
                min=float(lo if lo is not None else -_FLOAT_LIMIT),
                max=float(hi if hi is not None else _FLOAT_LIMIT),
            )
        else:
            self.kind, widget_type, annotation = "text", "LineEdit", str
            self.parse, self.format = _text_codec(tp)
        self.widget = create_widget(
            name=f.name, label=f.name.replace("_", " "), annotation=annotation,
            widget_type=widget_type, options=options,
        )
        if self.kind == "int" and self.optional:
            self.widget.native.setSpecialValueText("none")

    def get(self) -> Any:
        value = self.widget.value
        if self.kind == "int" and value == self.none_value:
            return None
        if self.kind != "text":
            return value
        text = value.strip()
        if not text and self.optional:
            return None
        try:
            assert self.parse is not None
            return self.parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise FormError(
                f"'{self.name.replace('_', ' ')}' cannot read {text!r}: "
                f"{self.widget.tooltip.split('.')[0]}. Write it as e.g. "
                f"{self.format(_EXAMPLES.get(self.parse, 1))!r}."
            ) from None

    def set(self, value: Any) -> None:
        if self.kind == "int" and value is None:
            value = self.none_value
        elif self.kind == "float":
            _fit_decimals(self.widget, float(value))
        elif self.kind == "text":
            value = "" if value is None else self.format(value)
        self.widget.value = value


def _fit_decimals(widget: Any, value: float) -> None:
    """Show as many decimals as ``value`` needs (a learning rate of 1e-4 must not read 0)."""
    text = f"{abs(value):.12f}".rstrip("0")
    decimals = min(max(len(text.split(".")[1]), 2), 12)
    widget.native.setDecimals(decimals)
    widget.step = 10.0**-decimals


def _literal(text: str) -> Any:
    return ast.literal_eval(text)


def _coordinate(text: str) -> Coordinate:
    value = ast.literal_eval(text if "," in text else f"{text},")
    if not isinstance(value, tuple) or not all(isinstance(v, int) for v in value):
        raise ValueError(text)
    return Coordinate(value)


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


_EXAMPLES: dict[Any, Any] = {
    _coordinate: Coordinate(64, 64), _names: ["foreground"], _literal: [(2, 2), (2, 2)],
}


def _format_literal(value: Any) -> str:
    """Python literal text, with coordinates as plain tuples."""
    if isinstance(value, Coordinate):
        return repr(tuple(int(v) for v in value))
    if isinstance(value, (list, tuple)):
        items = ", ".join(_format_literal(v) for v in value)
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' * (len(value) == 1)})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_format_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _text_codec(tp: Any) -> tuple[Callable[[str], Any], Callable[[Any], str]]:
    """(parse, format) for a field edited as text."""
    if tp is Coordinate:
        return _coordinate, lambda c: ", ".join(str(int(v)) for v in c)
    if tp is str:
        return str, str
    if tp is float:
        return float, repr
    if typing.get_origin(tp) is list and typing.get_args(tp) == (str,):
        return _names, ", ".join
    return _literal, _format_literal
