"""Blockwise post-processing of a prediction into a segmentation, with daisy workers.

:func:`segment_blockwise` turns a float32 prediction ``(channels, *spatial)`` in a zarr
array (what :func:`~napari_dacapo.blockwise.predict_blockwise` writes) into the
segmentation of the run's post-processor, with the parameters that validation found best,
one block at a time. How depends on the post-processor:

Voxel-wise (thresholds, argmax; :data:`VOXELWISE`). One step, ``segment``: each block is
post-processed on its own. The result equals the in-memory post-processor exactly.

Connected components (distance tasks; :data:`COMPONENTS`). Step ``segment`` thresholds
each block and labels its face-connected components, with ids unique over all blocks
(*fragments*, :mod:`.fragments`). It also pairs its fragments with those of the
neighbouring blocks that touch them across the shared faces (face neighbours, the
connectivity of the in-memory labelling) and keeps the pairs in its done marker. daisy
never runs two neighbouring blocks at once and always finishes one of them first
(``read_write_conflict``), so the block that runs second sees the other's fragments and
pairs every face. The parent then merges the paired fragments (connected components of the
fragment graph: one entry per fragment), drops objects smaller than ``min_size``, and step
``relabel`` replaces each fragment id by its object's label, 1..n. The partition of the
volume into objects equals the in-memory one exactly (only the ids differ).

Affinities (mutex watershed, seeded watershed; :data:`AFFINITIES`). Step ``segment`` runs
the post-processor on the block grown by ``context`` voxels on each side, so that objects
are cut with what lies around them, and keeps its result inside the block. For each pair of
fragments that touch across a face it records the mean predicted affinity of the edges
between them; pairs whose mean affinity exceeds the parameter set's ``bias`` are merged,
then relabelled as above. This is *not* the in-memory result in general: the
agglomeration sees only a block and its context, so where the prediction is ambiguous an
object can be split or joined differently along block faces, and the mutex watershed's
"mean affinity below the bias" background test is made per block. Objects that are well
separated (low affinities between them, high ones inside) come out as in memory however
many blocks they cross.

Memory. A worker holds one block with its context and the one-voxel layers beside its
faces; the parent holds one entry per fragment and per touching pair. Nothing holds the
volume.

Restarting works as for every job (:mod:`.scheduler`): the job folder
``<container>.blocks/<dataset>/`` keeps the markers of both steps (those of ``segment``
with each block's fragments and pairs) and ``relabel.npz`` (fragment -> label).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from .fragments import (
    face_affinities,
    face_channels,
    face_edges,
    fragment_ids,
    fragment_mapping,
    relabel,
)
from .locations import check_output_path, check_roi, split_zarr_path
from .scheduler import (
    BlockwiseError,
    BlockwiseJob,
    Conflict,
    Step,
    check_worker_options,
    finish_output,
    incomplete_output,
    job_conflict,
    missing_blocks,
    output_stamp,
    prepare_output,
    read_payloads,
    resume_note,
    run_step,
    threads_per_worker,
)

if TYPE_CHECKING:
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.experiments.tasks.post_processors.post_processor import PostProcessor
    from napari_dacapo.experiments.tasks.post_processors.post_processor_parameters import (
        PostProcessorParameters,
    )
    from napari_dacapo.store.file_store import FileStore

__all__ = [
    "BlockwiseSegmentationError",
    "SegmentationJob",
    "segment_blockwise",
    "segmentation_conflict",
    "segmentation_parameters",
    "blockwise_method",
    "VOXELWISE",
    "COMPONENTS",
    "AFFINITIES",
]

#: How a post-processor runs block by block (see the module docstring).
VOXELWISE, COMPONENTS, AFFINITIES = "voxel-wise", "connected components", "affinities"
MAPPING_FILE = "relabel.npz"


class BlockwiseSegmentationError(BlockwiseError):
    """Blocks of a blockwise segmentation were still not done after all retries.

    Attributes
    ----------
    failed_rois
        World write ROIs of the missing blocks (of the step that failed).
    """


def blockwise_method(post_processor: PostProcessor) -> str:
    """:data:`VOXELWISE`, :data:`COMPONENTS` or :data:`AFFINITIES`: how
    ``post_processor`` runs block by block.

    Raises
    ------
    ValueError
        For a post-processor with no blockwise method.
    """
    from napari_dacapo.experiments.tasks.post_processors import (
        ArgmaxPostProcessor,
        ConnectedComponentsPostProcessor,
        DummyPostProcessor,
        ThresholdPostProcessor,
    )
    from napari_dacapo.experiments.tasks.post_processors.affinities_post_processor import (
        AffinitiesPostProcessor,
    )

    # Connected components first: they are threshold post-processors too.
    if isinstance(post_processor, ConnectedComponentsPostProcessor):
        return COMPONENTS
    if isinstance(post_processor, AffinitiesPostProcessor):
        return AFFINITIES
    if isinstance(post_processor, (ThresholdPostProcessor, ArgmaxPostProcessor,
                                   DummyPostProcessor)):
        return VOXELWISE
    raise ValueError(
        f"{type(post_processor).__name__} has no blockwise method (there are voxel-wise "
        f"ones for thresholds and argmax, and instance ones for connected components and "
        f"affinities). Post-process a prediction that fits in memory with "
        f"napari_dacapo.predict.post_processing instead."
    )


@dataclass(frozen=True, kw_only=True)
class SegmentationJob(BlockwiseJob):
    """A blockwise segmentation: steps ``segment`` and ``relabel`` (voxel-wise
    post-processors need only the first).

    Attributes
    ----------
    prediction_file, prediction_dataset
        The prediction ``(channels, *spatial)``.
    prediction_stamp
        The prediction's stamp when the job was recorded (see
        :func:`~napari_dacapo.blockwise.scheduler.stamp_output`; None for a prediction
        napari-dacapo did not write): a prediction written anew since is another job.
    task
        The run's task config (as ``configs.to_dict`` writes it): its post-processor.
    parameters_id
        The post-processor's parameter set.
    voxel_size, block_shape, context
        The voxel size, and a block and the context read around it, in voxels.
    """

    prediction_file: str
    prediction_dataset: str
    task: dict[str, Any]
    parameters_id: int
    voxel_size: list[int]
    block_shape: list[int]
    context: list[int]
    # Defaulted: jobs recorded before predictions were stamped load as unstamped.
    prediction_stamp: str | None = None

    kind = "segment"
    steps = ("segment", "relabel")
    noun = "segmentation"
    rerun = "segment command or segment_blockwise call"
    field_notes = {"prediction_stamp": "prediction_stamp (the prediction was written anew since)"}
    error_type = BlockwiseSegmentationError

    def open_step(self, step: str) -> _BlockSegmenter | _BlockRelabeller:
        return _BlockSegmenter(self) if step == "segment" else _BlockRelabeller(self)

    def post_processing(self) -> tuple[PostProcessor, PostProcessorParameters]:
        """The task's post-processor and the job's parameter set."""
        from napari_dacapo.experiments.configs import from_dict

        config = from_dict(self.task)
        task = config.task_type(config)
        (parameters,) = [p for p in task.parameters if p.id == self.parameters_id]
        return task.post_processor, parameters

    @property
    def block_size(self) -> Coordinate:
        """A block in world units."""
        return Coordinate(self.block_shape) * Coordinate(self.voxel_size)

    def block_index(self, write_roi: Roi) -> int:
        """The raveled grid position of the block whose (cut) write ROI is ``write_roi``."""
        out = self.output_roi
        grid = [-(-s // b) for s, b in zip(out.shape, self.block_size)]
        position = (write_roi.begin - out.begin) / self.block_size
        return int(np.ravel_multi_index(tuple(int(p) for p in position), grid))

    def step(self, name: str, method: str) -> Step:
        """The geometry of step ``name`` for a post-processor of ``method``."""
        out, block = self.output_roi, self.block_size
        origin = Coordinate((0,) * out.dims)
        if name == "relabel":
            return Step(name, "relabelled", out, Roi(origin, block), Roi(origin, block),
                        doing="relabelling")
        context = Coordinate(self.context) * Coordinate(self.voxel_size)
        # Instance blocks read their neighbours' face layers (and affinities their
        # context): daisy must order neighbours.
        return Step(
            name, "segmented", total_roi=out.grow(context, context),
            read_roi=Roi(origin, block + context * 2), write_roi=Roi(context, block),
            read_write_conflict=method != VOXELWISE, doing="segmenting",
        )


def _zarr(file: str, dataset: str, mode: str = "r") -> Any:
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
        ZarrArrayConfig,
    )

    return ZarrArrayConfig(name="blockwise", file_name=Path(file), dataset=dataset,
                           mode=mode).array()


def _with_channels(data: np.ndarray, array: Any) -> np.ndarray:
    """``data`` read from ``array`` with a channel axis, also where ``array`` has none."""
    return data if array.channel_dims else data[None]


class _BlockSegmenter:
    """The worker side of step ``segment``: post-processor, prediction and output, opened
    once."""

    def __init__(self, job: SegmentationJob) -> None:
        self.job = job
        self.post_processor, self.parameters = job.post_processing()
        self.method = blockwise_method(self.post_processor)
        self.prediction = _zarr(job.prediction_file, job.prediction_dataset)
        self.output = _zarr(job.output_file, job.output_dataset, mode="r+")
        self.context = Coordinate(job.context) * self.prediction.voxel_size

    def __call__(self, block: Any) -> dict[str, np.ndarray] | None:
        from napari_dacapo.experiments.datasplits.datasets.arrays.array import voxel_slices

        write = block.write_roi.intersect(self.job.output_roi)
        if self.method == VOXELWISE:
            self.output[write] = self.post_processor.process(
                self.prediction[write], self.parameters
            )
            return None
        # Affinity blocks are segmented with their context; components need none.
        read = write
        if self.method == AFFINITIES:
            read = write.grow(self.context, self.context).intersect(self.prediction.roi)
        prediction = self.prediction[read]
        window = voxel_slices(write, read.begin, self.prediction.voxel_size)
        local = self._local_labels(prediction, window)
        ids = fragment_ids(local, self.job.block_index(write), int(np.prod(self.job.block_shape)))
        self.output[write] = ids if self.output.channel_dims else ids[0]
        fragments, sizes = np.unique(ids[ids > 0], return_counts=True)
        pairs, means = [np.zeros((0, 2), np.uint64)], [np.zeros(0)]
        for axis, side, layer in _neighbour_layers(write, self.job.output_roi,
                                                   self.prediction.voxel_size):
            theirs = _with_channels(self.output[layer], self.output)
            ours = ids.take([0 if side < 0 else -1], axis=axis + 1)
            weights = None
            if self.method == AFFINITIES:
                # The lower and upper voxel layers of the edges across this face.
                lower = window[axis].start - 1 if side < 0 else window[axis].stop - 1
                edge_layers = list(window)
                edge_layers[axis] = slice(lower, lower + 2)
                weights = face_affinities(
                    prediction[(slice(None), *edge_layers)], self.post_processor.offsets, axis
                )[None]
            face_pairs, face_means = face_edges(ours, theirs, weights)
            pairs.append(face_pairs)
            means.append(face_means if face_means is not None else np.zeros(0))
        payload = {"fragments": fragments, "sizes": sizes, "edges": np.concatenate(pairs)}
        if self.method == AFFINITIES:
            payload["affinities"] = np.concatenate(means)
        return payload

    def _local_labels(self, prediction: np.ndarray, window: tuple[slice, ...]) -> np.ndarray:
        """The block's objects, ``(channels, *spatial)`` labels 1..k per channel."""
        if self.method == COMPONENTS:
            from napari_dacapo.experiments.tasks.post_processors import (
                ThresholdPostProcessor,
                connected_components_post_processor,
            )

            # The thresholded masks, labelled as the post-processor does, without
            # min_size: whether an object is too small is known only once it is whole.
            masks = ThresholdPostProcessor.process(self.post_processor, prediction,
                                                   self.parameters)
            label = connected_components_post_processor.connected_components
            return np.stack([label(mask) for mask in masks])
        from skimage.segmentation import relabel_sequential

        labels = self.post_processor.process(prediction, self.parameters)
        return relabel_sequential(labels[window])[0][None]


def _neighbour_layers(write: Roi, out: Roi, voxel_size: Coordinate):
    """``(axis, side, roi)`` of the one-voxel layers just outside each face of ``write``
    that lie inside ``out`` (side -1: before the block along ``axis``, +1: after it)."""
    for axis in range(write.dims):
        for side in (-1, 1):
            begin, shape = list(write.begin), list(write.shape)
            begin[axis] = write.begin[axis] - voxel_size[axis] if side < 0 else write.end[axis]
            shape[axis] = voxel_size[axis]
            layer = Roi(begin, shape)
            if out.contains(layer):
                yield axis, side, layer


class _BlockRelabeller:
    """The worker side of step ``relabel``: the output and the fragment -> label map."""

    def __init__(self, job: SegmentationJob) -> None:
        self.roi = job.output_roi
        self.output = _zarr(job.output_file, job.output_dataset, mode="r+")
        with np.load(job.folder / MAPPING_FILE) as mapping:
            self.fragments, self.labels = mapping["fragments"], mapping["labels"]

    def __call__(self, block: Any) -> None:
        roi = block.write_roi.intersect(self.roi)
        self.output[roi] = relabel(self.output[roi], self.fragments, self.labels)


def _merge(job: SegmentationJob, method: str, parameters: PostProcessorParameters) -> None:
    """Merge the fragments of all blocks into objects and write ``relabel.npz``."""
    from napari_dacapo.store.atomic import atomic_write

    records = list(read_payloads(job.marker_dir("segment")))
    edges = np.concatenate([r["edges"] for r in records]).reshape(-1, 2)
    if method == AFFINITIES:
        edges = edges[np.concatenate([r["affinities"] for r in records]) > parameters.bias]
    fragments, labels = fragment_mapping(
        np.concatenate([r["fragments"] for r in records]),
        np.concatenate([r["sizes"] for r in records]), edges,
        min_size=getattr(parameters, "min_size", 1),
    )
    atomic_write(job.folder / MAPPING_FILE,
                 lambda fh: np.savez(fh, fragments=fragments, labels=labels))


def segmentation_parameters(
    run: Run, criterion: str | None, store: FileStore
) -> PostProcessorParameters:
    """The parameters :func:`segment_blockwise` post-processes ``run``'s predictions with:
    the best set for ``criterion``, or without one the only set there is.

    Raises
    ------
    ValueError, CheckpointError
        For a post-processor without a blockwise method, no criterion where the
        post-processor has several parameter sets, or a criterion not validated yet.
    """
    from napari_dacapo.checkpoints import best_parameters

    blockwise_method(run.task.post_processor)
    sets = list(run.task.parameters)
    if criterion is None and len(sets) > 1:
        criteria = list(run.task.evaluation_scores.criteria)
        raise ValueError(
            f"Run '{run.name}' post-processes with {len(sets)} parameter sets "
            f"({type(run.task.post_processor).__name__}: {sets[0]}, ...); name the "
            f"criterion whose best set to use, e.g. criterion='{criteria[0]}' (--criterion "
            f"{criteria[0]}, or checkpoint best:{criteria[0]}). Its criteria: "
            f"{', '.join(criteria)}. If it was never validated, validate a checkpoint "
            f"first: napari-dacapo validate --run {run.name} --iteration N."
        )
    return best_parameters(run, criterion, store)


def segment_blockwise(
    run: Run | str,
    prediction: str | Path,
    output: str | Path,
    *,
    criterion: str | None = None,
    workers: int = 2,
    roi: Roi | None = None,
    block_shape: Sequence[int] | None = None,
    context: int | Sequence[int] | None = None,
    store: FileStore | None = None,
    worker_command: str | None = None,
    threads: int | None = None,
    max_retries: int = 2,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Post-process a zarr prediction block by block with ``workers`` daisy workers.

    The run's post-processor runs with the parameters validation found best for
    ``criterion``; see the module docstring for how each kind of post-processor is split
    into blocks and how exactly the result matches the in-memory one. Rerunning an
    interrupted job does only the blocks not yet done.

    Parameters
    ----------
    run, store
        The run (or its name) whose task's post-processor to use, and its store.
    prediction
        ``"container.zarr/dataset"`` of a prediction ``(channels, *spatial)``, e.g. from
        :func:`~napari_dacapo.blockwise.predict_blockwise`.
    output
        ``"container.zarr/dataset"`` for the segmentation: uint64 labels for instance
        post-processors (with a channel axis when several channels are labelled), else
        what the post-processor returns; chunked to the block shape.
    criterion
        Whose best parameter set to use (e.g. ``"f1_score"``); needed unless the
        post-processor has a single parameter set.
    workers, worker_command, threads, max_retries, overwrite, progress
        As for :func:`~napari_dacapo.blockwise.predict_blockwise`.
    roi
        World region to segment (default: the whole prediction): inside the prediction,
        on its voxel grid.
    block_shape
        Voxels per block (default: the prediction's chunks, i.e. the prediction tiles).
    context
        Affinities only: voxels read beyond each side of a block (default: the longest
        offset of the neighborhood along each axis).

    Returns
    -------
    Path
        ``container.zarr/dataset`` of the segmentation.

    Raises
    ------
    BlockwiseSegmentationError
        If blocks failed on every try; rerunning the same segmentation redoes just those.
    JobStopped
        On Ctrl-C or SIGTERM, once the local workers have ended; rerunning finishes it.
    FileExistsError
        If the output exists and another job (or none) wrote it, unless ``overwrite``
        (:func:`segmentation_conflict` tells it without running anything).
    ValueError, CheckpointError
        For a run, criterion, prediction or geometry that do not fit, or a prediction that
        is incomplete (its writer was interrupted or is still running); named, with the
        fix.
    """
    check_worker_options(workers, worker_command, threads)
    pred_file, pred_dataset = split_zarr_path(prediction)
    # Resolved: workers may start in another directory.
    pred_file = Path(pred_file).resolve()
    out_file, out_dataset = check_output_path(output, [(pred_file, pred_dataset)],
                                              what="prediction")
    if (unfinished := incomplete_output(pred_file, pred_dataset)) is not None:
        # Its missing blocks hold zeros: segmented, they would look like background.
        raise ValueError(
            f"The prediction {pred_file}/{pred_dataset} is incomplete: {unfinished}. "
            f"Segment it once it is complete."
        )
    plan = _plan(run, pred_file, pred_dataset, out_file, out_dataset, criterion=criterion,
                 roi=roi, block_shape=block_shape, context=context, store=store,
                 threads=threads_per_worker(workers, worker_command, threads))
    job, method, parameters = plan.job, plan.method, plan.parameters
    prepare_output(
        job, shape=(*plan.channels, *(int(s) for s in job.output_roi.shape / plan.voxel_size)),
        dtype=plan.dtype, voxel_size=plan.voxel_size,
        axis_names=["c^"] * len(plan.channels) + plan.spatial_axes, units=plan.units,
        chunks=(*plan.channels, *job.block_shape), overwrite=overwrite,
        display_from=(pred_file, pred_dataset),
    )
    options = dict(workers=workers, worker_command=worker_command, max_retries=max_retries,
                   progress=progress)
    segment, relabelling = job.step("segment", method), job.step("relabel", method)
    if method != VOXELWISE and _has_markers(job, "relabel") and missing_blocks(job, segment):
        # Relabelled blocks no longer hold the fragment ids that a redone segment block
        # pairs its own with: segment everything anew.
        shutil.rmtree(job.marker_dir("segment"), ignore_errors=True)
        shutil.rmtree(job.marker_dir("relabel"), ignore_errors=True)
    if progress:  # after every check: a refusal is said alone, not after a start
        missing, _, note = resume_note(job, segment)
        if missing or (method != VOXELWISE and missing_blocks(job, relabelling)):
            print(f"Post-processing {pred_file}/{pred_dataset} block by block with {workers} "
                  f"worker(s)" + (f": {note}." if note else ""), file=sys.stderr)
        else:
            print(f"{job.output} is complete: {note}; nothing is left to do.",
                  file=sys.stderr)
    run_step(job, segment, **options)
    if method != VOXELWISE and missing_blocks(job, relabelling):
        _merge(job, method, parameters)
        run_step(job, relabelling, **options)
    finish_output(out_file, out_dataset)
    return Path(out_file) / out_dataset


@dataclass(frozen=True)
class _Plan:
    """A segmentation job and what making its output takes."""

    job: SegmentationJob
    method: str
    parameters: PostProcessorParameters
    channels: list[int]  # [n] for an output with n channels, else []
    dtype: Any
    voxel_size: Coordinate
    spatial_axes: list[str]
    units: list[str]


def _plan(
    run: Run | str, pred_file: Path, pred_dataset: str, out_file: str | Path, out_dataset: str,
    *, criterion: str | None, roi: Roi | None, block_shape: Sequence[int] | None,
    context: int | Sequence[int] | None, store: FileStore | None, threads: int | None,
) -> _Plan:
    """The job that segments the prediction ``pred_file/pred_dataset`` into
    ``out_file/out_dataset`` (see :func:`segment_blockwise`), checked against the run."""
    from napari_dacapo.checkpoints import load_run
    from napari_dacapo.experiments.configs import to_dict

    run, store = load_run(run, store)
    post_processor = run.task.post_processor
    method = blockwise_method(post_processor)
    parameters = segmentation_parameters(run, criterion, store)
    source = _zarr(str(pred_file), pred_dataset)
    where = f"prediction {pred_file}/{pred_dataset}"
    if not source.channel_dims:
        raise ValueError(
            f"The {where} has no channel axis (axes {source.axis_names}); post-process a "
            f"prediction (channels, *spatial) as predict_blockwise writes it."
        )
    dims, voxel_size = source.dims, source.voxel_size
    if (run_dims := run.model.architecture.dims) != dims:
        # A threshold works on any array: another run's prediction would be segmented
        # with parameters validated for something else, silently.
        raise ValueError(
            f"The {where} is {dims}D, but run '{run.name}' predicts in {run_dims}D: it was "
            f"not made by that run. Post-process it with the run that predicted it."
        )
    block = Coordinate(block_shape if block_shape is not None else source.chunk_shape)
    if len(block) != dims or any(b < 1 for b in block):
        raise ValueError(
            f"block_shape {tuple(block)} must give a positive number of voxels for each of "
            f"the {dims} spatial axes ({', '.join(source.axis_names[1:])})."
        )
    try:  # a block of zeros through the post-processor: checks the channels, gives the layout
        probe = post_processor.process(
            np.zeros((source.num_channels, *block), np.float32), parameters
        )
    except (ValueError, TypeError) as e:
        raise ValueError(f"The {where} does not fit run '{run.name}': {e}") from e
    out_roi = check_roi(roi, source.roi, voxel_size, where, source.axis_names[1:])
    job = SegmentationJob(
        output_file=str(Path(out_file).absolute()), output_dataset=out_dataset,
        roi=[list(map(int, out_roi.offset)), list(map(int, out_roi.shape))],
        prediction_file=str(pred_file), prediction_dataset=pred_dataset,
        prediction_stamp=output_stamp(pred_file, pred_dataset),
        task=to_dict(run.config.task_config), parameters_id=int(parameters.id),
        voxel_size=list(map(int, voxel_size)), block_shape=list(map(int, block)),
        context=_context(method, post_processor, context, dims), threads=threads,
    )
    return _Plan(
        job, method, parameters, [probe.shape[0]] if probe.ndim > dims else [],
        probe.dtype if method == VOXELWISE else np.uint64, voxel_size,
        list(source.axis_names[1:]), list(source.units),
    )


def segmentation_conflict(
    run: Run | str,
    prediction: str | Path,
    output: str | Path,
    *,
    criterion: str | None = None,
    store: FileStore | None = None,
) -> Conflict | None:
    """Why :func:`segment_blockwise` of ``prediction`` into ``output`` (with ``criterion``;
    whole prediction, default blocks) would refuse ``output`` without ``overwrite``, told
    before the prediction is (re)written: that takes long, and a segmentation only resumes
    a job over the prediction as it is now (one written anew has another stamp).

    Returns
    -------
    Conflict or None
        None if ``output`` does not exist, or holds the segmentation of the prediction as
        it is now (with the same parameters), which resumes.

    Raises
    ------
    ValueError, CheckpointError
        As :func:`segment_blockwise` does for a run, criterion or prediction that do not
        fit.
    """
    out_file, out_dataset = split_zarr_path(output)
    if not (Path(out_file) / out_dataset).exists():
        return None
    pred_file, pred_dataset = split_zarr_path(prediction)
    pred_file = Path(pred_file).resolve()
    if not (pred_file / pred_dataset).exists():
        return Conflict(f"it segments another prediction: {pred_file}/{pred_dataset} is not "
                        f"written yet", "", "")
    plan = _plan(run, pred_file, pred_dataset, out_file, out_dataset, criterion=criterion,
                 roi=None, block_shape=None, context=None, store=store, threads=None)
    return job_conflict(plan.job)


def _has_markers(job: SegmentationJob, step: str) -> bool:
    folder = job.marker_dir(step)
    return folder.exists() and any(p.name.isdigit() for p in folder.iterdir())


def _context(method: str, post_processor: Any, context: int | Sequence[int] | None,
             dims: int) -> list[int]:
    """Voxels a segment block reads beyond each side: the face layers of its neighbours
    for connected components, ``context`` (at least that) for affinities."""
    if method == VOXELWISE:
        return [0] * dims
    if method == COMPONENTS:
        return [1] * dims
    offsets = post_processor.offsets
    missing = [axis for axis in range(dims) if not face_channels(offsets, axis)]
    if missing:
        raise ValueError(
            f"The affinities neighborhood {offsets} has no one-step offset along spatial "
            f"axis {missing[0]}, so fragments cannot be merged across block faces there. "
            f"Train with a one-step offset per axis (e.g. {[0] * (dims - 1) + [1]}) to "
            f"segment blockwise."
        )
    if context is None:
        return [max(1, max(abs(o[axis]) for o in offsets)) for axis in range(dims)]
    values = [int(context)] * dims if np.isscalar(context) else [int(c) for c in context]
    if len(values) != dims or any(v < 1 for v in values):
        raise ValueError(
            f"context {context} must be at least 1 voxel, one value or one per spatial axis "
            f"({dims})."
        )
    return values
