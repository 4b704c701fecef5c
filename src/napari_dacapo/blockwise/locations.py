"""Where a blockwise job reads and writes: zarr paths (``container.zarr/dataset``) and
world regions, checked before anything is written, so that a job never starts on an
output that would destroy its input, or on a region it cannot compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from funlib.geometry import Coordinate, Roi

__all__ = ["split_zarr_path", "check_output_path", "check_roi", "roi_text"]


def split_zarr_path(value: str | Path) -> tuple[Path, str]:
    """Split ``container.zarr/path/in/it`` at its last ``.zarr`` component.

    Raises
    ------
    ValueError
        If no component ends in ``.zarr``.
    """
    parts = Path(value).parts
    ends = [i for i, part in enumerate(parts) if part.endswith(".zarr")]
    if not ends:
        raise ValueError(
            f"'{value}' names no zarr container; give container.zarr/dataset, e.g. "
            f"data.zarr/raw."
        )
    return Path(*parts[: ends[-1] + 1]), "/".join(parts[ends[-1] + 1 :])


def check_output_path(
    output: str | Path,
    inputs: Sequence[tuple[str | Path, str]] = (),
    what: str = "input",
) -> tuple[Path, str]:
    """``output`` split into container and dataset, refused where it names no dataset,
    where it cannot be written (under a file, or in a folder this user cannot write to),
    or where writing it would destroy one of ``inputs`` (container, dataset): the same
    array, or one inside the other (replacing a group deletes the arrays in it). ``what``
    names the inputs in the message.

    Raises
    ------
    ValueError
        Naming the problem and the fix; ``overwrite`` does not lift it.
    """
    out_file, out_dataset = split_zarr_path(output)
    if not out_dataset:
        raise ValueError(
            f"output '{output}' names no dataset; give container.zarr/dataset, e.g. "
            f"{out_file}/prediction."
        )
    _check_writable(out_file)
    # Resolved: a relative path, a symlink or a trailing '/' must not hide that it is the
    # input.
    target = _array_path(out_file, out_dataset)
    for in_file, in_dataset in inputs:
        source = _array_path(in_file, in_dataset)
        if target == source:
            raise ValueError(
                f"output '{output}' is the {what} itself; writing it would destroy the "
                f"{what}, so this is refused even with overwrite. Choose another output."
            )
        if target in source.parents or source in target.parents:
            raise ValueError(
                f"output '{output}' and the {what} {in_file}/{in_dataset} lie one inside "
                f"the other; writing the output could delete the {what}, so this is "
                f"refused even with overwrite. Choose an output outside it."
            )
    return out_file, out_dataset


def _check_writable(container: Path) -> None:
    """Refuse a container that cannot be made or written: the closest part of its path
    that exists must be a folder this user can write to (and, for a container not made
    yet, make a folder in)."""
    import os
    import tempfile

    existing = Path(container).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"output container {container} lies under {existing}, which is a file, not a "
            f"folder; choose an output in a folder."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"output container {container} cannot be written: {existing} is not writable "
            f"for this user. Choose an output in a folder you can write to."
        )
    if existing != Path(container).absolute():
        # os.access reads the mode bits only: root passes it where no folder can be made
        # (/proc, a read-only mount), so try making one.
        try:
            tempfile.TemporaryDirectory(dir=existing).cleanup()
        except OSError as e:
            raise ValueError(
                f"output container {container} cannot be created: no folder can be made in "
                f"{existing} ({e.strerror}). Choose an output in a folder you can write to."
            ) from None


def _array_path(file: str | Path, dataset: str) -> Path:
    return Path(file).resolve() / str(dataset).strip("/")


def roi_text(roi: Roi) -> str:
    """``roi`` as ``offset:shape`` in world units, e.g. ``0,0:256,256`` (the CLI's --roi
    syntax, and ``Roi(offset, shape)``'s arguments)."""
    return (",".join(str(int(v)) for v in roi.offset) + ":"
            + ",".join(str(int(v)) for v in roi.shape))


def check_roi(
    roi: Roi | None,
    bounds: Roi,
    voxel_size: Sequence[int],
    where: str,
    axis_names: Sequence[str],
) -> Roi:
    """``roi`` (default: ``bounds``) checked to be a region a job can compute: one axis
    per spatial axis of ``where`` (``axis_names``), a positive size, on the voxel grid
    (offset and shape multiples of ``voxel_size``), and inside ``bounds`` (the ROI of the
    array ``where`` names).

    Raises
    ------
    ValueError
        Naming the problem and a region to use instead.
    """
    if roi is None:
        return bounds
    unit = "offset:shape, world units"
    if roi.dims != bounds.dims:
        raise ValueError(
            f"roi {roi} has {roi.dims} axes, but the {where} has {bounds.dims} spatial axes "
            f"({', '.join(axis_names)}); give one per axis."
        )
    if roi.unbounded or any(s <= 0 for s in roi.shape):
        # An empty region would make an empty job (and an empty output) silently.
        raise ValueError(
            f"roi {roi_text(roi) if not roi.unbounded else roi} has no positive size along "
            f"every axis; give a shape of at least one voxel per axis ({unit}), e.g. "
            f"{roi_text(bounds)} for all of the {where}."
        )
    grid = Coordinate(voxel_size)
    # Outside first: a grid region around a region that reaches outside reaches outside too.
    if not bounds.contains(roi):
        inside = roi.intersect(bounds)
        if inside.empty:
            raise ValueError(
                f"roi {roi_text(roi)} ({unit}) is not inside the {where}: they do not "
                f"overlap (the {where.split()[0]} covers {roi_text(bounds)}). Give a region "
                f"inside it, e.g. {roi_text(bounds)} for all of it."
            )
        # On the grid, and still inside (the data's bounds lie on its grid).
        inside = inside.snap_to_grid(grid, mode="grow").intersect(bounds)
        raise ValueError(
            f"roi {roi_text(roi)} ({unit}) is not inside the {where} (which covers "
            f"{roi_text(bounds)}): it reaches outside it. Use its part inside, "
            f"{roi_text(inside)}."
        )
    if not (roi.offset.is_multiple_of(grid) and roi.shape.is_multiple_of(grid)):
        # Blocks and the output's voxels start on this grid; another region would be
        # moved onto it silently.
        raise ValueError(
            f"roi {roi_text(roi)} ({unit}) is not on the voxel grid of the {where}: its offset "
            f"and shape must be multiples of {tuple(grid)}. Use "
            f"{roi_text(roi.snap_to_grid(grid, mode='grow'))}, the grid region around it."
        )
    return roi
