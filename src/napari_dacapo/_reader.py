"""Reader: run folders and zarr / OME-Zarr arrays as napari layers.

- A run folder (``<store>/<run>``) opens the arrays of its latest iteration in each zarr
  container it holds (training snapshots, validation outputs, predictions), named like
  the layers the training panel shows (``"<run> · snapshot raw"``,
  ``"<run> · validation labels"``), so they update those layers in place.
- A zarr container, a dataset path inside one (``data.zarr/volumes/raw``) or an array's
  metadata file (``.zarray``, ``zarr.json``) opens every array below that path; an OME-Zarr
  multiscale group opens as one multiscale layer.

Geometry is read by :class:`ZarrArray` (DaCapo attributes or OME-Zarr transformations), so
layers land where training and prediction see the data: ``scale`` is the voxel size,
``translate`` the offset and ``units`` the array's units (fractional OME-Zarr micrometres are
whole nanometres, as for training). napari converts between layers' units, so a layer lines
up with the same data opened by another reader in micrometres. Arrays stay on disk and are
read lazily. Integer arrays of 32 bits or more, and arrays the plugin's writer marked as
labels, open as Labels layers.
A layer's metadata records the array's ``source``, ``dataset`` and the ``axis_names`` of
the layer's axes (a channel axis as ``'c^'``), which the writer saves it by again.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

LayerData = tuple[Any, dict[str, Any], str]

#: Attribute under which the writer records napari details (layer type, world factor).
NAPARI_ATTR = "napari_dacapo"
#: Units napari gives layers without physical units; the writer stores them as unknown ('').
NO_UNIT = "pixel"
#: Files that mark a folder as a zarr node (format 2 array / group, format 3).
ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")
#: Metadata files a user may drop instead of their folder.
METADATA_FILES = (*ZARR_MARKERS, ".zattrs")
#: Names of arrays that hold labels whatever their data type.
LABEL_NAMES = re.compile(r"(^|[/_ ])(labels?|gt|seg(mentation)?|instances?)$", re.IGNORECASE)
#: Run-folder entries that are not outputs (the run's own copies of layer data).
RUN_INPUTS = ("data",)
#: Words of output layer names that differ from the stored names, so that a run folder
#: opened later fills the layers the training panel showed ("<run> · snapshot raw").
OUTPUT_WORDS = {"snapshots": "snapshot", "segmentation": "labels"}


def recorded_display(container: str | Path, dataset: str = "") -> dict[str, Any]:
    """The napari placement that our writer recorded with a zarr array (``world_factor``,
    ``units``), or ``{}`` when there is none or the array cannot be read."""
    import zarr

    try:
        from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import FRESH

        node = zarr.open(str(container), mode="r", **FRESH)
        node = node[dataset] if dataset else node
        recorded = dict(node.attrs.get(NAPARI_ATTR) or {})
    except (KeyError, IndexError, TypeError, OSError, ValueError):
        return {}
    return {k: recorded[k] for k in ("world_factor", "units") if k in recorded}


def recorded_display_of(config: Any) -> dict[str, Any]:
    """:func:`recorded_display` of the zarr array that an array config reads, through the
    ``source_array_config`` chain of configs that wrap it (e.g. an
    IntensitiesArrayConfig); ``{}`` for ``None`` or an array not read from zarr."""
    while config is not None and not hasattr(config, "file_name"):  # to the source array
        config = getattr(config, "source_array_config", None)
    return {} if config is None else recorded_display(config.file_name, config.dataset)


def get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData]] | None:
    """The reader for ``path`` (npe2 ``get_reader``): :func:`read` when every path is a run
    folder or a zarr array / group, else None so other readers get the chance."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if paths and all(classify(p) is not None for p in paths):
        return read
    return None


def read(path: str | Sequence[str]) -> list[LayerData]:
    """Layer data tuples for one or more run folders or zarr paths (see module doc)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers: list[LayerData] = []
    for p in paths:
        found = classify(p)
        if found is None:
            raise ValueError(
                f"{p} is neither a napari-dacapo run folder nor a zarr array or group. Open "
                f"a run folder (it holds config.yaml) or a .zarr container."
            )
        kind, where = found
        layers += read_run(where) if kind == "run" else _read_container(*where)
    return layers


def _read_container(container: Path, dataset: str) -> list[LayerData]:
    """:func:`read_zarr`, except for a zarr container of a run folder opened on its own
    (``snapshots.zarr``, ``data/train_raw.zarr`` ...): placed by the run's world factor,
    and an output container shows its latest iteration, as the run folder would."""
    from napari_dacapo.store.file_store import CONFIG_FILE

    run_dir = next((folder for folder in container.parents[:2]
                    if (folder / CONFIG_FILE).is_file()), None)
    if run_dir is None:
        return read_zarr(container, dataset)
    placement = _placement(run_dir)
    if dataset or container.parent.name in RUN_INPUTS:
        return _with_units(read_zarr(container, dataset, placement.factor), placement.units)
    return _run_container_layers(run_dir, container, placement)


def classify(path: str | Path) -> tuple[str, Any] | None:
    """``("run", folder)``, ``("zarr", (container, dataset))`` or None for ``path``."""
    from napari_dacapo.store.file_store import CONFIG_FILE

    path = Path(path).expanduser()
    if path.is_file() and path.name in METADATA_FILES:
        path = path.parent
    if not path.is_dir():
        return None
    if (path / CONFIG_FILE).is_file():
        return "run", path
    if not _is_zarr_node(path):
        return None
    container = path
    while _is_zarr_node(container.parent) and container.parent != container:
        container = container.parent
    return "zarr", (container, path.relative_to(container).as_posix().strip("."))


def read_run(run_dir: str | Path) -> list[LayerData]:
    """Layers of a run folder's outputs: per zarr container in it (snapshots, validation,
    predictions), the arrays of the latest iteration, or all arrays if not per iteration.
    They are placed as the layers the run was trained on: divided by the run's world factor,
    in those layers' units (a layer in pixels beside them would make napari drop the
    units), and the raw crop of a run trained on an RGB image in RGB (see
    :func:`_placement`)."""
    run_dir = Path(run_dir)
    placement = _placement(run_dir)
    # Containers directly in the run folder or in a plain subfolder (e.g. predictions/);
    # never a walk through the containers' own chunk files.
    folders = [run_dir] + [
        p for p in sorted(run_dir.iterdir())
        if p.is_dir() and p.name not in RUN_INPUTS and not _is_zarr_node(p)
    ]
    containers = [
        p for folder in folders for p in sorted(folder.glob("*.zarr"))
        if _is_zarr_node(p) and not p.name.startswith(".")  # not a write in progress
    ]
    layers = [layer for container in containers
              for layer in _run_container_layers(run_dir, container, placement)]
    if not layers:
        logger.info("Run folder %s holds no snapshots, validation outputs or predictions "
                    "yet.", run_dir)
    return layers


@dataclass(frozen=True)
class _Placement:
    """How the arrays of a run folder open (its display record, see
    :meth:`~napari_dacapo.store.file_store.FileStore.store_display`): divided by its world
    factor, in the units of the layers it was trained on (:func:`run_units`), and, for a
    run trained on an RGB image (``"rgb"``), its raw crops in RGB."""

    factor: float = 1.0
    units: tuple[str, ...] = ()
    rgb: bool = False


def _placement(run_dir: str | Path) -> _Placement:
    from napari_dacapo.store.file_store import read_display

    record = read_display(run_dir)
    return _Placement(float(record.get("world_factor", 1)), _units_in(record),
                      bool(record.get("rgb")))


def run_units(run_dir: str | Path) -> tuple[str, ...]:
    """The units of the layers run ``run_dir`` was trained on, per spatial axis, as its
    display record holds them (``"units"``, recorded where they are not all pixels); ``()``
    when none are recorded or napari could not read them."""
    from napari_dacapo.store.file_store import read_display

    return _units_in(read_display(run_dir))


def _units_in(record: dict[str, Any]) -> tuple[str, ...]:
    units = record.get("units")
    if not isinstance(units, list) or not units:
        return ()
    units = [str(u) for u in units]
    lengths = [u for u in units if u != NO_UNIT]
    return tuple(units) if len(_length_units(lengths)) == len(lengths) else ()


def layer_units(units: Sequence[str], ndim: int) -> tuple[str, ...] | None:
    """``units`` of the spatial axes for a layer of ``ndim`` axes, matched from the last
    axis (as napari aligns layers): axes before them (channels) in pixels, units of axes
    the layer lacks (a 2D layer of a 3D run) left out. None without units."""
    if not units or ndim <= 0:
        return None
    units = tuple(units)[-ndim:]
    return (NO_UNIT,) * (ndim - len(units)) + units


def _with_units(layers: list[LayerData], units: Sequence[str]) -> list[LayerData]:
    """``layers`` given ``units`` (:func:`layer_units`) where their arrays record none."""
    for _, meta, _ in layers:
        if "units" not in meta and (found := layer_units(units, len(meta["scale"]))):
            meta["units"] = found
    return layers


def _run_container_layers(
    run_dir: Path, container: Path, placement: _Placement
) -> list[LayerData]:
    """The layers of one output container of a run folder: the arrays of its latest
    iteration (or all, if not per iteration), named as the training panel names them and
    shown as it shows them (:class:`_Placement`)."""
    from napari_dacapo.gui.layers import layer_name
    from napari_dacapo.store.file_store import SNAPSHOTS_CONTAINER

    group = _open(container)
    iterations = [int(k) for k in _child_names(group) if k.isdigit()]
    dataset = str(max(iterations)) if iterations else ""
    try:
        found = read_zarr(container, dataset, placement.factor)
    except ValueError as e:  # e.g. an iteration whose arrays are still being written
        logger.warning("Skipped %s: %s", container, e)
        return []
    paths = [[p for p in meta["metadata"]["dataset"][len(dataset):].split("/") if p]
             for _, meta, _ in found]
    # Path parts all arrays share (a lone validation dataset's name) say nothing.
    shared = len(os.path.commonprefix(paths)) if len(paths) > 1 else max(len(paths[0]) - 1, 0)
    stem = container.relative_to(run_dir).with_suffix("").as_posix()
    layers = []
    for (data, meta, kind), parts in zip(found, paths):
        words = [OUTPUT_WORDS.get(w, w) for w in (stem, *parts[shared:])]
        meta["name"] = layer_name(run_dir.name, " ".join(words))
        if iterations:
            meta["metadata"]["iteration"] = int(dataset)
        if placement.rgb and container.name == SNAPSHOTS_CONTAINER and parts[-1:] == ["raw"]:
            data = _as_rgb(data, meta)
        layers.append((data, meta, kind))
    return _with_units(layers, placement.units)


def _as_rgb(data: Any, meta: dict[str, Any]) -> Any:
    """The raw crop of a run trained on an RGB image, stored channels first (as the
    network reads it), as an RGB layer again (colour last, lazily); not a channel axis,
    which would add a slider through the colours to a 2D viewer."""
    from napari_dacapo.experiments.datasplits.datasets.arrays.array import is_channel_axis

    axis_names = meta["metadata"]["axis_names"]
    if (meta.get("multiscale") or not axis_names or not is_channel_axis(str(axis_names[0]))
            or data.shape[0] not in (3, 4)):
        return data
    meta["scale"], meta["translate"] = list(meta["scale"][1:]), list(meta["translate"][1:])
    meta["metadata"]["axis_names"] = list(axis_names[1:])
    if "units" in meta:
        meta["units"] = tuple(meta["units"][1:])
    meta["rgb"] = True
    return _channels_last(data)


def read_zarr(container: str | Path, dataset: str = "", factor: float = 1.0) -> list[LayerData]:
    """One layer per array at or below ``dataset`` in the zarr ``container``.

    Layer names are the arrays' paths below ``dataset``; a single array is named after
    itself, or after the container when it is the container's only array. Geometry is
    divided by ``factor`` unless an array records its own world factor. Raises
    ``ValueError`` naming the fix when no array there can be read.
    """
    container, dataset = Path(container), dataset.strip("/")
    arrays = list(_arrays(_open(container), dataset))
    if not arrays:
        raise ValueError(
            f"The zarr group '{dataset}' in {container} holds no arrays. Open a container or "
            f"group with arrays in it."
        )
    layers, problems = [], []
    only = len(arrays) == 1 and not dataset
    for path in arrays:
        name = Path(container).stem if only else (
            path[len(dataset):].strip("/") or Path(path).name)
        try:
            layers.append(array_layer(container, path, name, factor))
        except (ValueError, FileNotFoundError, TypeError) as e:
            problems.append(str(e))
    if problems and not layers:
        raise ValueError("No array could be opened: " + " | ".join(problems))
    for problem in problems:
        logger.warning("Skipped an array: %s", problem)
    return layers


def array_layer(container: Path, dataset: str, name: str, factor: float = 1.0) -> LayerData:
    """The layer data tuple of one array (or OME-Zarr multiscale group), lazily read; its
    geometry divided by the world factor it records, else by ``factor``."""
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
        ZarrArrayConfig,
    )
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_metadata import (
        INCOMPLETE_ATTR,
        find_multiscale,
    )

    array = ZarrArrayConfig(
        name=re.sub(r"[^A-Za-z0-9._-]", "_", name) or "array", file_name=container,
        dataset=dataset,
    ).array()
    node = _open(container)[dataset] if dataset else _open(container)
    attrs = node.attrs.asdict()
    multiscale = find_multiscale(attrs) if not hasattr(node, "shape") else None
    if multiscale is not None:
        levels = [node[str(d["path"])] for d in multiscale["datasets"]]
        attrs = levels[0].attrs.asdict()
    else:
        levels = [array.source]
    napari = dict(attrs.get(NAPARI_ATTR) or {})
    kind = napari.get("layer_type") or layer_kind(name, array.dtype)
    if unfinished := attrs.get(INCOMPLETE_ATTR):  # e.g. a prediction killed halfway
        warnings.warn(f"{container}/{dataset} is incomplete: {unfinished}.", stacklevel=2)
    factor = float(napari.get("world_factor", factor))
    scale = [v / factor for v in array.voxel_size]
    translate = [o / factor for o in array.offset]
    rgb = bool(napari.get("rgb")) and array.num_channels in (3, 4) and kind == "image"
    axis_names = list(array.axis_names)  # of the layer's axes: its channels saved as such
    if array.channel_dims:
        if array.num_channels == 1:  # a lone channel axis is dropped, lazily
            levels = [_drop_first_axis(level) for level in levels]
        elif rgb:  # an RGB layer, written channels first: colour last again, lazily
            levels = [_channels_last(level) for level in levels]
        else:  # channels stay an axis of their own, shown with a slider
            scale, translate = [1.0, *scale], [0.0, *translate]
        if array.num_channels == 1 or rgb:
            axis_names = axis_names[array.channel_dims:]
    meta: dict[str, Any] = {
        "name": napari.get("name") or name,
        "scale": scale,
        "translate": translate,
        "metadata": {"source": str(container), "dataset": dataset, "axis_names": axis_names},
    }
    if len(napari.get("units") or ()) == len(scale):
        meta["units"] = tuple(napari["units"])
    elif factor == 1 and (units := _length_units(array.units)):
        # Without units napari shows the nanometre numbers as pixels, and cannot line the
        # layer up with a micrometre layer. A channel axis kept as an axis has no unit.
        meta["units"] = (NO_UNIT,) * (len(scale) - len(units)) + tuple(units)
    if multiscale is not None:
        meta["multiscale"] = True
    if rgb:
        meta["rgb"] = True
    if kind == "labels" and np.dtype(array.dtype).kind == "f":
        kind = "image"  # a float array marked as labels cannot be a Labels layer
    return (levels if multiscale is not None else levels[0]), meta, kind


def layer_kind(name: str, dtype: Any) -> str:
    """``"labels"`` for label-like arrays (named like labels, or integers of 32 bits or
    more: 8- and 16-bit integers are usually intensities), else ``"image"``."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iub" and (LABEL_NAMES.search(name) or dtype.itemsize >= 4):
        return "labels"
    return "image"


def _length_units(units: Sequence[str]) -> list[str]:
    """``units`` when each is a unit of length (as napari reads units, with pint), else
    ``[]``: napari refuses a layer whose unit it cannot read, and '' means unknown."""
    import pint

    registry = pint.get_application_registry()
    length = registry.meter.dimensionality
    try:
        if units and all(
            u and registry.parse_expression(u).dimensionality == length for u in units
        ):
            return list(units)
    except (pint.errors.PintError, ValueError, TypeError, AttributeError):
        pass  # not a unit pint knows: the layer keeps napari's default
    return []


# -- zarr helpers -----------------------------------------------------------------------------


def _is_zarr_node(path: Path) -> bool:
    return any((path / marker).is_file() for marker in ZARR_MARKERS)


def _open(container: Path) -> Any:
    import zarr

    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import FRESH

    return zarr.open(str(container), mode="r", **FRESH)


def _child_names(group: Any) -> list[str]:
    return [] if hasattr(group, "shape") else [name for name, _ in group.groups()]


def _arrays(root: Any, dataset: str) -> Iterator[str]:
    """Paths of the arrays (and multiscale groups) at or below ``dataset``."""
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_metadata import (
        find_multiscale,
    )

    node = root[dataset] if dataset else root
    if hasattr(node, "shape") or find_multiscale(node.attrs.asdict()) is not None:
        yield dataset
        return
    children = sorted([n for n, _ in node.arrays()] + [n for n, _ in node.groups()])
    for child in children:
        yield from _arrays(root, f"{dataset}/{child}".strip("/"))


def _drop_first_axis(array: Any) -> Any:
    import dask.array as da

    chunks = getattr(array, "chunks", None) or "auto"
    return da.from_array(array, chunks=chunks)[0]


def _channels_last(array: Any) -> Any:
    import dask.array as da

    chunks = getattr(array, "chunks", None) or "auto"
    return da.moveaxis(da.from_array(array, chunks=chunks), 0, -1)
