"""How a prediction is cut into tiles: their world geometry for one model
(:class:`TileGeometry`), and the groups of neighbouring tiles whose inputs are read at once
(:class:`TileGroup`, :data:`GROUP_READ_VOXELS`)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from funlib.geometry import Coordinate, Roi

from napari_dacapo.experiments.model import Model

__all__ = ["GROUP_READ_VOXELS", "TileGeometry", "TileGroup"]


#: Neighbouring tiles are read from the input in groups of at most about this many input
#: voxels (held as float32: 64 MiB), one read per group: their inputs overlap by the
#: network's context (in the 3D example every input voxel lies in 27 tiles), and a chunked
#: zarr or dask source would otherwise decompress each chunk once for every tile that
#: touches it (reading the 125 tiles of a 100³ zarr tile by tile took 150 ms of CPU, in 8
#: groups 16 ms, in one 2 ms; bench/predict_throughput.py).
GROUP_READ_VOXELS = 2**24


@dataclass(frozen=True)
class TileGeometry:
    """World-unit geometry of prediction tiles for one model and input voxel size."""

    input_voxel_size: Coordinate
    output_voxel_size: Coordinate
    input_size: Coordinate  # world units
    output_size: Coordinate
    context: Coordinate  # world units on each side

    @classmethod
    def for_model(cls, model: Model, input_voxel_size: Coordinate, eval_mode: bool = True):
        input_shape = model.eval_input_shape if eval_mode else model.input_shape
        _, output_shape = model.compute_output_shape(Coordinate(input_shape))
        output_voxel_size = model.scale(Coordinate(input_voxel_size))
        input_size = Coordinate(input_shape) * input_voxel_size
        output_size = output_shape * output_voxel_size
        diff = input_size - output_size
        if any(d % 2 for d in diff) or not (diff / 2).is_multiple_of(input_voxel_size):
            raise ValueError(
                f"The network's context {tuple(diff)} (input {tuple(input_size)} minus output "
                f"{tuple(output_size)}, world units) is not an even number of input voxels; "
                f"choose an input_shape whose output is centred on the input."
            )
        return cls(input_voxel_size, output_voxel_size, input_size, output_size, diff / 2)

    @property
    def tile_shape(self) -> tuple[int, ...]:
        """A whole tile's output, in output voxels."""
        return tuple(int(s) for s in self.output_size / self.output_voxel_size)

    def tile_counts(self, roi: Roi) -> list[int]:
        """How many tiles cover ``roi`` along each axis (the last ones may overhang it)."""
        return [-(-int(e - b) // int(s))
                for b, e, s in zip(roi.begin, roi.end, self.output_size)]

    def group_size(self, roi: Roi, max_voxels: int = GROUP_READ_VOXELS) -> int:
        """The largest ``g`` such that the input of ``g`` neighbouring tiles along every axis
        of ``roi`` (fewer along axes that have fewer) holds at most ``max_voxels`` input
        voxels; 1 at least."""
        counts = self.tile_counts(roi)
        size, context = [int(s) for s in self.output_size], [int(c) for c in self.context]

        def group_voxels(g: int) -> int:
            extent = [min(g, n) * s + 2 * c for n, s, c in zip(counts, size, context)]
            return int(np.prod([e // int(v) for e, v in zip(extent, self.input_voxel_size)]))

        g = 1
        while g < max(counts) and group_voxels(g + 1) <= max_voxels:
            g += 1
        return g

    def tile_groups(self, roi: Roi, max_voxels: int = GROUP_READ_VOXELS) -> list[TileGroup]:
        """The tiles covering ``roi``, in groups of neighbours whose inputs are read at
        once (see :class:`TileGroup`). Output ROIs are cut to ``roi`` (the last tiles along
        an axis may overhang it: their input is whole).

        A group spans up to :meth:`group_size` tiles along every axis, so memory stays
        bounded however large ``roi`` is.
        """
        # Plain integers: funlib's Roi arithmetic would cost more per tile than the rest
        # of a small 2D network's per-tile work.
        begin, end = [int(b) for b in roi.begin], [int(e) for e in roi.end]
        size, context = [int(s) for s in self.output_size], [int(c) for c in self.context]
        voxel = [int(v) for v in self.input_voxel_size]
        out_voxel = [int(v) for v in self.output_voxel_size]
        counts = self.tile_counts(roi)
        g = self.group_size(roi, max_voxels)
        shape = [min(g, n) for n in counts]
        length = [(s + 2 * c) // v for s, c, v in zip(size, context, voxel)]
        groups = []
        for start in itertools.product(*(range(0, n, k) for n, k in zip(counts, shape))):
            stop = [min(a + k, n) for a, k, n in zip(start, shape, counts)]
            group_roi = Roi(
                [b + i * s - c for b, i, s, c in zip(begin, start, size, context)],
                [(j - i) * s + 2 * c for i, j, s, c in zip(start, stop, size, context)],
            )
            cuts, outputs, targets = [], [], []
            for index in itertools.product(*(range(a, b) for a, b in zip(start, stop))):
                first = [(i - a) * s // v for i, a, s, v in zip(index, start, size, voxel)]
                cuts.append(tuple(slice(f, f + n) for f, n in zip(first, length)))
                out_begin = [b + i * s for b, i, s in zip(begin, index, size)]
                out_shape = [min(s, e - o) for s, e, o in zip(size, end, out_begin)]
                outputs.append(Roi(out_begin, out_shape))
                targets.append(tuple(
                    slice((o - b) // v, (o - b + n) // v)
                    for o, b, n, v in zip(out_begin, begin, out_shape, out_voxel)
                ))
            groups.append(TileGroup(group_roi, cuts, outputs, targets))
        return groups

    def tiles(self, roi: Roi) -> list[tuple[Roi, Roi]]:
        """(input ROI, output ROI) pairs covering ``roi``, in the order prediction visits
        them (group by group; see :meth:`tile_groups`)."""
        pairs = []
        for group in self.tile_groups(roi):
            for cut, output in zip(group.cuts, group.outputs, strict=True):
                first = [c.start * v for c, v in zip(cut, self.input_voxel_size)]
                pairs.append((Roi(group.roi.begin + Coordinate(first), self.input_size), output))
        return pairs


@dataclass(frozen=True, slots=True)
class TileGroup:
    """Neighbouring prediction tiles whose inputs are read at once.

    Attributes
    ----------
    roi
        World ROI of the group's input (the tiles' inputs together).
    cuts
        Each tile's input, as voxel slices of the group's input.
    outputs
        Each tile's output ROI (world units), in the same order.
    targets
        The same as voxel slices of the whole prediction (output voxels from the ROI's
        begin).
    """

    roi: Roi
    cuts: list[tuple[slice, ...]]
    outputs: list[Roi]
    targets: list[tuple[slice, ...]]
