"""Output layers: named ``"<run> · <output>"``, created once and then updated in place.

This is the only module that builds output layer names or adds output layers, so a run's
snapshot, validation and prediction layers never pile up as duplicates.

An output layer is found again by the name it was made under, among the layers made here
(:func:`output_layer`), never by a layer's name alone: a layer of the user's that happens
to carry that name (ground truth loaded as ``"<run> · validation labels"``, a layer
renamed by hand) is never written into, and the pickers of the training panel leave
output layers out (:func:`is_output`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

LAYER_KINDS = ("image", "labels")

_warmed_up = threading.Event()

#: Layers made by :func:`show`, with the name each was made under (a layer renamed by the
#: user keeps its entry; a duplicate of it, being a new layer, has none).
_OUTPUTS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def layer_name(run: str, output: str) -> str:
    return f"{run} · {output}"


def is_output(layer: Any) -> bool:
    """Whether ``layer`` is an output layer of the plugin (written into as runs go on)."""
    return layer in _OUTPUTS


def output_layer(viewer: Any, name: str) -> Any | None:
    """The output layer of ``viewer`` made under ``name`` (see :func:`show`), or None."""
    return next((layer for layer in viewer.layers if _OUTPUTS.get(layer) == name), None)


def show(
    viewer: Any,
    name: str,
    data: Any,
    kind: str = "image",
    *,
    select: bool = True,
    **kwargs: Any,
) -> Any:
    """Put ``data`` into the layer called ``name``: replace its data (and geometry) when the
    layer exists with the same kind, otherwise add it. Returns the layer.

    ``kwargs`` are napari layer keyword arguments (``scale``, ``translate``, ``colormap``,
    ``opacity``, ``blending``, ``metadata`` ...); geometry and metadata (e.g. the iteration
    shown) are applied on every update, display settings only when the layer is created
    (so the user's contrast and colormap choices stay).
    With ``select=False`` a new layer does not take the selection (see
    :func:`_add_unselected`).
    """
    if kind not in LAYER_KINDS:
        raise ValueError(f"kind must be one of {LAYER_KINDS}, got {kind!r}")
    if (layer := output_layer(viewer, name)) is not None:
        if type(layer).__name__.lower() == kind:
            geometry = {k: kwargs[k] for k in ("scale", "translate") if k in kwargs}
            for key, value in geometry.items():
                if tuple(getattr(layer, key)) != tuple(value):
                    setattr(layer, key, value)
            layer.data = data
            if "metadata" in kwargs:
                layer.metadata = {**layer.metadata, **kwargs["metadata"]}
            return layer
        viewer.layers.remove(layer)
    from napari.layers import Image, Labels

    ndim = np.ndim(data) - bool(kwargs.get("rgb"))  # colours are no axis of the layer's
    if "units" not in kwargs and (units := _units_beside(viewer, ndim)):
        kwargs["units"] = units
    layer = (Labels if kind == "labels" else Image)(data, name=name, **kwargs)
    _OUTPUTS[layer] = name  # before it is inserted: the pickers then leave it out
    # napari numbers the name ("... [1]") if a layer of the user's already has it.
    if select:
        viewer.add_layer(layer)
    else:
        _add_unselected(viewer, layer)
    return layer


def _units_beside(viewer: Any, ndim: int) -> tuple[str, ...] | None:
    """Units for a new ``ndim``-D layer that agree with the viewer's layers (napari aligns
    axes from the last): the layers' common units, if any is not pixels. A layer in pixels
    beside data in nanometres (a zarr read with its voxel size) would make napari drop
    units from the scale bar and warn of inconsistent units."""
    common = viewer.layers.extent.units  # None when the layers disagree already
    if not common or all(str(unit) == "pixel" for unit in common):
        return None
    units = [str(unit) for unit in common[-ndim:]]
    return ("pixel",) * (ndim - len(units)) + tuple(units)


def _add_unselected(viewer: Any, layer: Any) -> None:
    """Add ``layer`` without napari selecting it: an output layer that arrives while the
    user paints labels must not take the brush away from the labels layer.

    napari selects every inserted layer; only a private flag of its layer list turns that
    off, which a plugin's viewer (napari's public-only proxy) refuses with a warning. So
    the selection is given back, with its events held meanwhile: nothing follows the
    brief selection of the new layer (switching the layer controls there and back would
    cost the GUI thread about 30 ms per added layer under software OpenGL).
    """
    selection = viewer.layers.selection
    before = list(selection)  # the layers themselves (iterating a proxy unwraps them)
    with selection.events.blocker_all():
        viewer.add_layer(layer)
        if len(before) == 1:
            selection.active = before[0]  # the layer selected (and active) as it was
        else:
            selection.clear()
            selection.update(before)


def warm_up_layer_types() -> None:
    """Pay napari's one-off costs of the first Image and Labels layer of a process (module
    imports, unit registry, colormaps: about a second) in a background thread, so that the
    first output layer does not stall the GUI thread with them. Layer models hold no Qt
    objects, so they can be made off the GUI thread; these are never added to a viewer."""
    if _warmed_up.is_set():
        return
    _warmed_up.set()
    # Except pint's unit registry (napari's layer units: 0.1 s), filled here: it fills itself
    # on first use without a lock, and a layer made on the GUI thread meanwhile found it
    # half-filled ("'pixel' is not defined in the unit registry").
    import pint

    pint.get_application_registry().pixel  # noqa: B018 (the lookup fills the registry)

    def make_layers() -> None:
        import numpy as np
        from napari.layers import Image, Labels

        Image(np.zeros((2, 2), np.float32))
        Labels(np.zeros((2, 2), np.uint8))

    threading.Thread(target=make_layers, name="napari-dacapo layer warm-up", daemon=True).start()


def show_channels(
    viewer: Any,
    name: str,
    data: Any,
    kind: str,
    scale: Sequence[float],
    translate: Sequence[float],
    **kwargs: Any,
) -> Any:
    """:func:`show` for ``(channels, *spatial)`` data placed by the spatial ``scale`` and
    ``translate``: a lone channel is dropped (by indexing, so lazy data stays lazy), and
    several channels get an axis (a slider) of their own."""
    scale, translate = tuple(scale), tuple(translate)
    if data.ndim > len(scale):
        if data.shape[0] == 1:
            data = data[0]
        else:
            scale, translate = (1.0, *scale), (0.0, *translate)
    return show(viewer, name, data, kind, scale=scale, translate=translate, **kwargs)
