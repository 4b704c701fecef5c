"""Where a zarr array sits in the world: its axes, voxel size, offset and units, read from
the attributes the common writers leave behind.

Three conventions are understood, in this order:

1. DaCapo / funlib.persistence attributes on the array: ``voxel_size``, ``offset``,
   ``axis_names``, ``units`` (older DaCapo and gunpowder: ``resolution``, ``axes``);
2. OME-Zarr (NGFF 0.4 ``multiscales`` on the parent group, NGFF 0.5 the same under
   ``attributes["ome"]``): axis types, and scale/translation transformations;
3. nothing: voxel size 1 and offset 0, with a logged note.

World units are integers (as in funlib.geometry). Fractional values (``0.5`` micrometer)
are converted to nanometers when the unit says how; otherwise the reader is told to set
the geometry in the array config.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from funlib.geometry import Coordinate

from .array import default_axis_names, is_channel_axis

logger = logging.getLogger(__name__)

#: The attribute that marks an output array as incomplete until its writer finishes it,
#: saying how to finish it (see napari_dacapo.blockwise.scheduler.fresh_stamp); readers
#: warn of it.
INCOMPLETE_ATTR = "napari_dacapo_incomplete"

#: Lengths of common units in nanometers, used to turn fractional world units into integers.
NANOMETERS_PER_UNIT = {
    "angstrom": 0.1,
    "nanometer": 1.0,
    "nm": 1.0,
    "micrometer": 1e3,
    "micron": 1e3,
    "um": 1e3,
    "µm": 1e3,
    "millimeter": 1e6,
    "mm": 1e6,
    "centimeter": 1e7,
    "meter": 1e9,
}


@dataclasses.dataclass(frozen=True)
class ZarrGeometry:
    """Axes and world placement of one zarr array.

    Attributes
    ----------
    axis_names
        All axis names, a channel axis (if any) first as ``'c^'`` or as stored.
    voxel_size, offset
        Spatial voxel size and world position of the first voxel, in world units.
    units
        Unit of each spatial axis (``''`` when unknown).
    origin
        Which convention the geometry was read from, for messages.
    """

    axis_names: list[str]
    voxel_size: Coordinate
    offset: Coordinate
    units: list[str]
    origin: str

    def checked(self, shape: Sequence[int], where: str) -> ZarrGeometry:
        """This geometry, after checking it fits an array of ``shape``; the error names
        the attribute, the array (``where``) and the fix."""
        fix = (
            "Fix the array's attributes, or set axis_names / voxel_size / offset / units "
            "in its ZarrArrayConfig."
        )
        if len(self.axis_names) != len(shape):
            raise ValueError(
                f"{where}: axis_names {self.axis_names} ({self.origin}) has "
                f"{len(self.axis_names)} entries but the array has {len(shape)} dimensions "
                f"{tuple(shape)}. {fix}"
            )
        channels = [i for i, a in enumerate(self.axis_names) if is_channel_axis(a)]
        if channels not in ([], [0]):
            raise ValueError(
                f"{where}: axis_names {self.axis_names} ({self.origin}) need at most one "
                f"channel axis and it must come first. {fix}"
            )
        spatial = len(shape) - len(channels)
        for label, values in (
            ("voxel_size", self.voxel_size),
            ("offset", self.offset),
            ("units", self.units),
        ):
            if len(values) != spatial:
                raise ValueError(
                    f"{where}: {label} {list(values)} ({self.origin}) has {len(values)} "
                    f"entries but the array has {spatial} spatial axes "
                    f"(axis_names {self.axis_names}). {fix}"
                )
        if any(v <= 0 for v in self.voxel_size):
            raise ValueError(
                f"{where}: voxel_size {tuple(self.voxel_size)} ({self.origin}) must be "
                f"positive. {fix}"
            )
        return self


def read_geometry(
    array_attrs: Mapping[str, Any],
    parent_attrs: Mapping[str, Any] | None,
    path_in_parent: str,
    ndim: int,
    where: str,
    axis_names: Sequence[str] | None = None,
) -> ZarrGeometry:
    """The geometry of an array from its own attributes, else from an OME-Zarr multiscale
    on its parent group (``path_in_parent`` names the array there), else defaults.

    ``axis_names`` (a config's override) replaces the stored axis names; it also tells
    how many axes are spatial where the attributes leave that open.
    """
    if any(k in array_attrs for k in ("voxel_size", "resolution", "offset", "axis_names")):
        return dacapo_geometry(array_attrs, ndim, where, axis_names)
    multiscale = find_multiscale(parent_attrs or {})
    if multiscale is not None:
        geometry = ome_geometry(multiscale, path_in_parent, where)
        if axis_names is None:
            return geometry
        return dataclasses.replace(geometry, axis_names=list(axis_names))
    logger.info(
        "%s has no DaCapo or OME-Zarr geometry attributes; using voxel size 1 and offset 0 "
        "(set voxel_size and offset in its ZarrArrayConfig if that is wrong).",
        where,
    )
    names = list(axis_names) if axis_names is not None else default_axis_names(ndim, False)
    spatial = sum(not is_channel_axis(a) for a in names)
    return ZarrGeometry(
        names, Coordinate((1,) * spatial), Coordinate((0,) * spatial), [""] * spatial, "defaults"
    )


def dacapo_geometry(
    attrs: Mapping[str, Any], ndim: int, where: str, axis_names: Sequence[str] | None = None
) -> ZarrGeometry:
    """Geometry from DaCapo / funlib.persistence (or older gunpowder) array attributes."""
    voxel_size = attrs.get("voxel_size", attrs.get("resolution"))
    if axis_names is None:
        axis_names = attrs.get("axis_names", attrs.get("axes"))
    if axis_names is not None:
        axis_names = [str(a) for a in axis_names]
        spatial = sum(not is_channel_axis(a) for a in axis_names)
    else:
        known = voxel_size if voxel_size is not None else attrs.get("offset")
        spatial = len(known) if known is not None else ndim
        if not 0 <= ndim - spatial <= 1:
            raise ValueError(
                f"{where}: the attributes give {spatial} spatial values (voxel_size/offset) "
                f"but the array has {ndim} dimensions and no axis_names attribute. Add an "
                f"axis_names attribute (channel axis first as 'c^') or set axis_names in "
                f"its ZarrArrayConfig."
            )
        axis_names = default_axis_names(spatial, channels=ndim > spatial)
    voxel_size = voxel_size if voxel_size is not None else [1] * spatial
    offset = attrs.get("offset", [0] * spatial)
    units = [str(u) for u in attrs.get("units", [""] * spatial)]
    voxel_size, offset, units = integer_world_units(voxel_size, offset, units, where)
    return ZarrGeometry(axis_names, voxel_size, offset, units, "DaCapo attributes")


def find_multiscale(group_attrs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first OME-Zarr multiscale of a group (NGFF 0.4, or 0.5 under ``ome``), with
    its NGFF ``version``."""
    ome = group_attrs.get("ome", group_attrs)
    multiscales = ome.get("multiscales") if isinstance(ome, Mapping) else None
    if not multiscales:
        return None
    version = multiscales[0].get("version") or ome.get("version") or "0.4"
    return {**multiscales[0], "version": str(version)}


def ome_geometry(multiscale: Mapping[str, Any], path: str, where: str) -> ZarrGeometry:
    """Geometry of the scale level ``path`` of an OME-Zarr multiscale."""
    datasets = multiscale.get("datasets", [])
    entry = next((d for d in datasets if str(d.get("path")) == path), None)
    if entry is None:
        paths = [str(d.get("path")) for d in datasets]
        raise ValueError(
            f"{where}: '{path}' is not a scale level of the OME-Zarr multiscale around it "
            f"(levels: {paths}). Set dataset to one of those levels."
        )
    axes = [a if isinstance(a, Mapping) else {"name": a} for a in multiscale.get("axes", [])]
    names = [str(a["name"]) for a in axes]
    kinds = [a.get("type", "channel" if is_channel_axis(a["name"]) else "space") for a in axes]
    if any(k not in ("space", "channel") for k in kinds):
        raise ValueError(
            f"{where}: OME-Zarr axes {names} of types {kinds} include an axis that is "
            f"neither space nor channel (e.g. time). Save one time point as its own array."
        )
    scale, translation = [1.0] * len(axes), [0.0] * len(axes)
    # Dataset transformations come first, then the multiscale-wide ones (NGFF 0.4 §3.4).
    for transforms in (entry.get("coordinateTransformations", []),
                       multiscale.get("coordinateTransformations", [])):
        for t in transforms:
            if t.get("type") == "scale":
                scale = [s * f for s, f in zip(scale, t["scale"])]
                translation = [o * f for o, f in zip(translation, t["scale"])]
            elif t.get("type") == "translation":
                translation = [o + d for o, d in zip(translation, t["translation"])]
    spatial = [i for i, k in enumerate(kinds) if k == "space"]
    units = [str(axes[i].get("unit", "")) for i in spatial]
    voxel_size, offset, units = integer_world_units(
        [scale[i] for i in spatial], [translation[i] for i in spatial], units, where
    )
    axis_names = ["c^" if k == "channel" else n for n, k in zip(names, kinds)]
    origin = f"OME-Zarr {multiscale.get('version', '')} multiscales".replace("  ", " ")
    return ZarrGeometry(axis_names, voxel_size, offset, units, origin)


def integer_world_units(
    voxel_size: Sequence[float], offset: Sequence[float], units: Sequence[str], where: str
) -> tuple[Coordinate, Coordinate, list[str]]:
    """Voxel size and offset as integers, converting to nanometers if that is needed and
    the units allow it (funlib.geometry would silently truncate ``0.5`` to ``0``)."""
    values = [*voxel_size, *offset]
    if all(_is_integral(v) for v in values):
        return _coordinate(voxel_size), _coordinate(offset), list(units)
    factors = [NANOMETERS_PER_UNIT.get(u.lower()) for u in units]
    if len(factors) == len(voxel_size) and None not in factors:
        nm_size = [v * f for v, f in zip(voxel_size, factors)]  # type: ignore[operator]
        nm_offset = [v * f for v, f in zip(offset, factors)]  # type: ignore[operator]
        if all(_is_integral(v) for v in (*nm_size, *nm_offset)):
            logger.info("%s: voxel size and offset converted from %s to nanometer.",
                        where, units)
            return _coordinate(nm_size), _coordinate(nm_offset), ["nanometer"] * len(units)
    raise ValueError(
        f"{where}: voxel size {list(voxel_size)} and offset {list(offset)} (units "
        f"{list(units)}) are not whole numbers, and the units do not convert them to whole "
        f"nanometers. Set integer voxel_size and offset (e.g. in nanometers) in its "
        f"ZarrArrayConfig."
    )


def _is_integral(value: float) -> bool:
    return math.isclose(value, round(value), rel_tol=0, abs_tol=1e-6)


def _coordinate(values: Sequence[float]) -> Coordinate:
    return Coordinate(int(round(v)) for v in values)
