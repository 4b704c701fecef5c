"""Fragments: the pieces of objects that the blocks of a blockwise instance segmentation
find, and how they become objects.

Each block labels its own objects; :func:`fragment_ids` turns these local labels into
ids unique over all blocks (*fragments*). Where a block meets a neighbour, the fragments
on the two sides of the shared face that touch are paired (:func:`face_edges`, with the
affinity across the face where the prediction holds affinities). The parent merges the
fragments that the kept pairs join (:func:`fragment_mapping`; one entry per fragment),
and a last pass replaces each fragment id by its object's label (:func:`relabel`).

Fragment ids carry :data:`FRAGMENT_BIT`, so they never equal a final label (1..n):
relabelling a block twice changes nothing, and a relabel pass that was killed halfway is
simply run again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "FRAGMENT_BIT",
    "fragment_ids",
    "face_edges",
    "face_channels",
    "face_affinities",
    "fragment_mapping",
    "relabel",
]

#: Set in every fragment id, never in a final label.
FRAGMENT_BIT = np.uint64(1 << 63)


def fragment_ids(local: np.ndarray, block_index: int, block_voxels: int) -> np.ndarray:
    """Ids unique over all blocks for one block's local labels.

    Parameters
    ----------
    local
        Labels ``(channels, *spatial)``: 1..k per channel, 0 for background.
    block_index
        The block's position in the block grid, raveled (0, 1, ...).
    block_voxels
        Voxels in a whole block (no channel of a block has more labels).

    Returns
    -------
    numpy.ndarray
        uint64 ids ``FRAGMENT_BIT + slot * (block_voxels + 1) + label`` with one slot per
        block and channel; background stays 0.
    """
    channels = local.shape[0]
    slots = np.arange(block_index * channels, (block_index + 1) * channels, dtype=np.uint64)
    first = FRAGMENT_BIT + slots.reshape(-1, *(1,) * (local.ndim - 1)) * np.uint64(
        block_voxels + 1
    )
    return np.where(local > 0, first + local.astype(np.uint64), np.uint64(0))


def face_edges(
    ours: np.ndarray, theirs: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The pairs of fragments that touch across a block face.

    Parameters
    ----------
    ours, theirs
        The two voxel layers on either side of the face (same shape): this block's
        fragment ids and the neighbour's. A neighbour voxel that holds no fragment (0: the
        neighbour is background there or not written yet) pairs with nothing.
    weights
        Optional, same shape: a value per voxel pair (the affinity across the face).

    Returns
    -------
    pairs
        Distinct ``(ours, theirs)`` pairs, ``(n, 2)`` uint64.
    mean
        With ``weights``: the mean weight of each pair's voxel pairs, ``(n,)``.
    """
    touching = (ours > 0) & (theirs >= FRAGMENT_BIT)
    pairs = np.stack([ours[touching], theirs[touching]], axis=1).astype(np.uint64)
    pairs, inverse = np.unique(pairs, axis=0, return_inverse=True)
    if weights is None:
        return pairs, None
    inverse = inverse.ravel()
    sums = np.bincount(inverse, weights=weights[touching], minlength=len(pairs))
    return pairs, sums / np.maximum(np.bincount(inverse, minlength=len(pairs)), 1)


def face_channels(offsets: Sequence[Sequence[int]], axis: int) -> list[tuple[int, int]]:
    """``(channel, step)`` of the one-step offsets along spatial ``axis`` (step +1 or -1):
    the affinities that join voxels across a face along that axis."""
    from napari_dacapo.experiments.tasks.post_processors.affinities_post_processor import (
        is_nearest,
    )

    return [(c, int(o[axis])) for c, o in enumerate(offsets) if is_nearest(o) and o[axis]]


def face_affinities(
    affinities: np.ndarray, offsets: Sequence[Sequence[int]], axis: int
) -> np.ndarray:
    """The affinity between neighbouring voxels across a face along spatial ``axis``.

    Parameters
    ----------
    affinities
        ``(channels, *spatial)`` with two layers along ``axis``: the lower and the upper
        voxel of each edge across the face.
    offsets
        The offset of each affinity channel; those of :func:`face_channels` are used (an
        offset +1 stores the edge at its lower voxel, -1 at its upper one). There must
        be at least one.

    Returns
    -------
    numpy.ndarray
        The mean over those channels, one layer along ``axis``.
    """
    values = []
    for channel, step in face_channels(offsets, axis):
        layer = [slice(None)] * (affinities.ndim - 1)
        layer[axis] = slice(0, 1) if step == 1 else slice(1, 2)
        values.append(affinities[channel][tuple(layer)])
    return np.mean(values, axis=0)


def fragment_mapping(
    fragments: np.ndarray, sizes: np.ndarray, edges: np.ndarray, min_size: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Merge the fragments that ``edges`` join into objects and number the objects.

    Parameters
    ----------
    fragments, sizes
        Every fragment id (each once) and its voxel count.
    edges
        ``(n, 2)`` pairs of fragments to merge (repeats are harmless).
    min_size
        Objects with fewer voxels (summed over their fragments) become background.

    Returns
    -------
    fragments
        The fragment ids, sorted.
    labels
        Each one's object label: 1..n in the order of the objects' smallest fragment ids,
        0 for objects dropped by ``min_size``.

    Raises
    ------
    ValueError
        If an edge names a fragment that is not in ``fragments``.
    """
    order = np.argsort(fragments)
    fragments, sizes = fragments[order].astype(np.uint64), sizes[order]
    if not len(fragments):
        return fragments, np.zeros(0, np.uint64)
    ends = np.minimum(np.searchsorted(fragments, edges), len(fragments) - 1)
    if not np.array_equal(fragments[ends], edges):
        raise ValueError(
            "Blocks paired fragments that no block recorded: the job's records are "
            "inconsistent. Rerun it with overwrite=True (--overwrite)."
        )
    graph = coo_matrix(
        (np.ones(len(ends), np.int8), (ends[:, 0], ends[:, 1])),
        shape=(len(fragments), len(fragments)),
    )
    # Components are numbered in the order of their smallest member (scipy visits nodes
    # in index order), so labels follow the fragment ids.
    _, component = connected_components(graph, directed=False)
    kept = np.bincount(component, weights=sizes) >= min_size
    labels = (np.cumsum(kept) * kept).astype(np.uint64)
    return fragments, labels[component]


def relabel(data: np.ndarray, fragments: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``data`` with every fragment id replaced by its label (see
    :func:`fragment_mapping`); background and final labels stay as they are.

    Raises
    ------
    ValueError
        If ``data`` holds a fragment that ``fragments`` does not list.
    """
    is_fragment = data >= FRAGMENT_BIT
    found = data[is_fragment]
    index = np.minimum(np.searchsorted(fragments, found), max(len(fragments) - 1, 0))
    if found.size and not np.array_equal(fragments[index], found):
        raise ValueError(
            "The block holds fragments that the merge did not list: the job's records are "
            "inconsistent. Rerun it with overwrite=True (--overwrite)."
        )
    out = data.copy()
    out[is_fragment] = labels[index]
    return out
