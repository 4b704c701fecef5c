"""Output layers: named ``"<run> · <output>"``, created once and then updated in place.

This is the only module that builds output layer names or adds output layers, so a run's
snapshot, validation and prediction layers never pile up as duplicates.
"""

from __future__ import annotations

from typing import Any

LAYER_KINDS = ("image", "labels")


def layer_name(run: str, output: str) -> str:
    return f"{run} · {output}"


def show(
    viewer: Any,
    name: str,
    data: Any,
    kind: str = "image",
    **kwargs: Any,
) -> Any:
    """Put ``data`` into the layer called ``name``: replace its data (and geometry) when the
    layer exists with the same kind, otherwise add it. Returns the layer.

    ``kwargs`` are napari layer keyword arguments (``scale``, ``translate``, ``colormap``,
    ``opacity``, ``blending`` ...); geometry is applied on every update, display settings
    only when the layer is created (so the user's contrast and colormap choices stay).
    """
    if kind not in LAYER_KINDS:
        raise ValueError(f"kind must be one of {LAYER_KINDS}, got {kind!r}")
    if name in viewer.layers:
        layer = viewer.layers[name]
        if type(layer).__name__.lower() == kind:
            geometry = {k: kwargs[k] for k in ("scale", "translate") if k in kwargs}
            for key, value in geometry.items():
                if tuple(getattr(layer, key)) != tuple(value):
                    setattr(layer, key, value)
            layer.data = data
            return layer
        viewer.layers.remove(layer)
    add = viewer.add_labels if kind == "labels" else viewer.add_image
    return add(data, name=name, **kwargs)
