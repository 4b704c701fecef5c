"""Sample data (File > Open Sample > DaCapo): synthetic blobs with their instance labels.

The blobs are generated (seeded, well under a second) by
:func:`napari_dacapo.examples.synthetic_blobs`, the same data the bundled example run
trains on, so a new user can paint, press Train and see results within a minute.
"""

from __future__ import annotations

from typing import Any

#: Shapes of the samples: the training volumes of the bundled example run.
SHAPE_2D = (256, 256)
SHAPE_3D = (96, 96, 96)


def make_blobs_2d() -> list[tuple[Any, dict[str, Any], str]]:
    """A 2D image of touching blobs in noise and its instance labels (two layers)."""
    return _blobs(SHAPE_2D, "2D")


def make_blobs_3d() -> list[tuple[Any, dict[str, Any], str]]:
    """A 3D volume of touching blobs in noise and its instance labels (two layers)."""
    return _blobs(SHAPE_3D, "3D")


def _blobs(shape: tuple[int, ...], label: str) -> list[tuple[Any, dict[str, Any], str]]:
    from napari_dacapo.examples import synthetic_blobs

    raw, labels = synthetic_blobs(shape)
    return [
        (raw, {"name": f"blobs {label}", "contrast_limits": (0, 255)}, "image"),
        (labels, {"name": f"blobs {label} labels", "opacity": 0.5}, "labels"),
    ]
