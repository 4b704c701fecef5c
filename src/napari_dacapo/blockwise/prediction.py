"""Blockwise prediction of zarr volumes bigger than memory, with daisy workers.

:func:`predict_blockwise` cuts the requested region into blocks of whole prediction
tiles (the model's eval output, read from the input grown by the network's context, exactly
as :func:`napari_dacapo.predict.predict` tiles it; see :class:`BlockLayout`) and lets daisy
hand the blocks to worker processes. Each worker loads the checkpoint once, and predicts a
block as ``predict()`` predicts a group of neighbouring tiles: one read of the block's input,
one forward pass per tile. It writes the block into a zarr array that the parent prepared,
chunked one chunk per tile, so blocks write whole chunks and never share one, and nothing
ever holds the whole volume.

A block holds several tiles because a block has fixed costs: reading its input with the
context around it (a chunk of a zarr input is decompressed once per block that touches it),
its done marker, daisy's messages. Blocks are as large as
:data:`~napari_dacapo.predict.GROUP_READ_VOXELS` allows (the limit of one grouped read in
``predict()``), but a small region is still cut into at least
:data:`MIN_BLOCKS_PER_WORKER` blocks per worker, so that no worker idles.

The job (run, checkpoint iteration, input, region, precision) is recorded in ``job.yaml``
in ``<container>.blocks/<dataset>/``, with the done markers of its blocks beside it;
restarts, worker command templates, failures and the mark of an incomplete output work as
described in :mod:`napari_dacapo.blockwise.scheduler`. A block whose prediction holds NaN
or infinite values says so in its done marker, and the parent warns once after the job.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from .locations import check_output_path, check_roi, split_zarr_path
from .scheduler import (
    BlockwiseError,
    BlockwiseJob,
    Step,
    check_worker_options,
    finish_output,
    phrased,
    prepare_output,
    recorded_job,
    resume_note,
    run_step,
    threads_per_worker,
)

if TYPE_CHECKING:
    import torch

    from napari_dacapo.checkpoints import Checkpoint
    from napari_dacapo.experiments.datasplits.datasets.arrays.array import Array
    from napari_dacapo.experiments.datasplits.datasets.arrays.array_config import ArrayConfig
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
        ZarrArrayConfig,
    )
    from napari_dacapo.experiments.model import Model
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.predict import TileGeometry
    from napari_dacapo.store.file_store import FileStore

__all__ = [
    "BlockwisePredictionError",
    "BlockLayout",
    "PredictionJob",
    "MIN_BLOCKS_PER_WORKER",
    "predict_blockwise",
]

#: Where a region has enough tiles, it is cut into at least this many blocks per worker:
#: fewer, larger blocks would leave workers idle while the last ones finish.
MIN_BLOCKS_PER_WORKER = 2

#: The payload a block's done marker holds when its prediction has NaN or infinite values
#: (every other block's marker is empty).
NON_FINITE = "non_finite"


class BlockwisePredictionError(BlockwiseError):
    """Blocks of a blockwise prediction were still not written after all retries.

    Attributes
    ----------
    failed_rois
        World write ROIs of the missing blocks.
    """


@dataclass(frozen=True)
class BlockLayout:
    """How a blockwise prediction cuts its region into blocks of whole prediction tiles.

    A block spans ``tiles_per_block`` tiles along every axis (fewer where the region has
    fewer; the last blocks along an axis are cut to the region), starting at the region's
    begin: its tiles are those ``predict()`` would predict there.

    Attributes
    ----------
    geometry
        The prediction tiles.
    roi
        The output region, world units, on the output voxel grid.
    tiles_per_block
        Tiles along every axis of a block.
    """

    geometry: TileGeometry
    roi: Roi
    tiles_per_block: int

    @classmethod
    def plan(
        cls,
        model: Model,
        raw: Array,
        roi: Roi | None,
        output: str | Path,
        *,
        workers: int,
        tiles_per_block: int | None = None,
        overwrite: bool = False,
    ) -> BlockLayout:
        """The layout for predicting ``roi`` of ``raw`` (default: all of it) with
        ``model`` into ``output`` (``container.zarr/dataset``) with ``workers`` workers.

        ``tiles_per_block`` defaults to the largest count for which a block's input holds
        at most :data:`~napari_dacapo.predict.GROUP_READ_VOXELS` values, and so does its
        prediction, while the region keeps at least :data:`MIN_BLOCKS_PER_WORKER` blocks
        per worker (one tile per block at least). As that depends on ``workers``, a job
        that resumes keeps the layout recorded for ``output`` (unless ``overwrite``), so
        that its done markers still name the same blocks.

        Raises
        ------
        ValueError
            If ``roi`` has another number of axes than ``raw`` or no positive size, or
            ``tiles_per_block`` is below 1.
        """
        from napari_dacapo.predict import GROUP_READ_VOXELS, TileGeometry

        geometry = TileGeometry.for_model(model, raw.voxel_size)
        if roi is not None and roi.dims != raw.dims:
            raise ValueError(
                f"roi {roi} has {roi.dims} axes, but the input has {raw.dims} spatial axes "
                f"({', '.join(raw.axis_names[raw.channel_dims:])}); give one per axis."
            )
        if roi is not None and (roi.unbounded or any(s <= 0 for s in roi.shape)):
            # A region without tiles has no layout (a division by zero further on).
            raise ValueError(
                f"roi {roi} has no positive size along every axis; give a shape of at "
                f"least one voxel per axis."
            )
        out_roi = (roi or raw.roi).snap_to_grid(geometry.output_voxel_size, mode="grow")
        if tiles_per_block is not None:
            if tiles_per_block < 1:
                raise ValueError(
                    f"tiles_per_block is {tiles_per_block}; give at least 1 (tiles along "
                    f"every axis of a block), or None to choose it from the region."
                )
            return cls(geometry, out_roi, tiles_per_block)
        recorded = None if overwrite else recorded_job(*split_zarr_path(output))
        if isinstance(recorded, PredictionJob) and recorded.output_roi == out_roi:
            return cls(geometry, out_roi, recorded.tiles_per_block)
        counts = geometry.tile_counts(out_roi)
        def prediction_values(k: int) -> int:
            return model.num_out_channels * math.prod(
                min(k, n) * t for n, t in zip(counts, geometry.tile_shape)
            )

        def blocks(k: int) -> int:
            return math.prod(-(-n // k) for n in counts)

        k = geometry.group_size(out_roi, GROUP_READ_VOXELS // (raw.num_channels or 1))
        while k > 1 and (prediction_values(k) > GROUP_READ_VOXELS
                         or blocks(k) < MIN_BLOCKS_PER_WORKER * workers):
            k -= 1
        # The smallest k with as many blocks along every axis: blocks as even as one k
        # allows, so that no worker is left with a much larger one (5 tiles: 3 + 2, not
        # 4 + 1).
        return cls(geometry, out_roi, max(-(-n // -(-n // k)) for n in counts))

    @property
    def tile_shape(self) -> tuple[int, ...]:
        """A tile's output in voxels: the output's chunk shape (without channels)."""
        return self.geometry.tile_shape

    @property
    def block_size(self) -> Coordinate:
        """A whole block's output, world units."""
        return self.geometry.output_size * self.tiles_per_block

    @property
    def num_blocks(self) -> int:
        """How many blocks cover the region (as many done markers end the job)."""
        return math.prod(-(-int(s) // int(b)) for s, b in zip(self.roi.shape, self.block_size))

    def step(self) -> Step:
        """The daisy step: a block's read ROI is its write ROI grown by the network's
        context, both relative to the total ROI = the region grown by the context
        ("overhang" keeps the last blocks that stick out; workers cut them to the
        region)."""
        context = self.geometry.context
        return Step(
            "predict", "predicted", total_roi=self.roi.grow(context, context),
            read_roi=Roi((0,) * self.roi.dims, self.block_size + context * 2),
            write_roi=Roi(context, self.block_size), doing="predicting",
        )


@dataclass(frozen=True, kw_only=True)
class PredictionJob(BlockwiseJob):
    """A blockwise prediction: one step, ``predict``, whose done markers lie in the job
    folder itself.

    Attributes
    ----------
    tiles_per_block
        Of the job's :class:`BlockLayout` (1 in jobs recorded before a block could hold
        several tiles).
    """

    run: str
    store_root: str
    iteration: int
    input: dict[str, Any]  # the input ArrayConfig, as configs.to_dict writes it
    rescale: bool | list[float]
    device: str | None
    precision: str | None
    tiles_per_block: int = 1

    kind = "predict"
    steps = ("predict",)
    noun = "prediction"
    error_type = BlockwisePredictionError

    @property
    def rerun(self) -> str:  # type: ignore[override]
        """With the job's iteration: a checkpoint named ``latest`` or
        ``best:<criterion>`` moves on while a run trains."""
        return (f"predict command (with --workers and --checkpoint {self.iteration}) or "
                f"predict_blockwise call (checkpoint={self.iteration})")

    def marker_dir(self, step: str) -> Path:
        return self.folder

    def resume_advice(self, recorded: BlockwiseJob, differ: Sequence[str]) -> str:
        """Where this job differs from ``recorded`` only in what the caller chooses
        anyway: the iteration (``latest`` and ``best:<criterion>`` move on while a run
        trains) and the input's voxel size and offset (see :func:`_geometry_arguments`;
        the region follows them), the arguments that run ``recorded``."""
        assert isinstance(recorded, PredictionJob)
        api: list[str] = []
        command_line: list[str] = []
        for name in differ:
            if name == "iteration":
                from napari_dacapo.store.file_store import FileStore

                if recorded.iteration not in FileStore(self.store_root).checkpoint_iterations(
                        self.run):
                    return (f" It cannot be finished: the checkpoint of its iteration "
                            f"{recorded.iteration} is no longer stored.")
                api.append(f"checkpoint={recorded.iteration}")
                command_line.append(f"--checkpoint {recorded.iteration}")
            elif name == "input" and (found := _geometry_arguments(self.input, recorded.input)):
                api += found[0]
                command_line += found[1]
            elif name == "roi" and "input" in differ:
                pass  # a region follows the input's geometry: placed as recorded, it is too
            else:
                return ""
        how = phrased(f"predict with {', '.join(api)}",
                      f"rerun the command with {' and '.join(command_line)}")
        return f" To finish it, {how} (its finished blocks are kept)."

    def open_step(self, step: str) -> _BlockPredictor:
        return _BlockPredictor(self)


def _geometry_arguments(
    new: dict[str, Any], old: dict[str, Any]
) -> tuple[list[str], list[str]] | None:
    """The arguments, for the API and the command line, that give the zarr input
    ``new`` (a ZarrArrayConfig as ``configs.to_dict`` writes it) the voxel size and offset
    of ``old``, where those are all that differ (else None)."""
    keys = [key for key in dict.fromkeys([*new, *old]) if new.get(key) != old.get(key)]
    if (not keys or not set(keys) <= {"voxel_size", "offset"}
            or new.get("__type__") != "ZarrArrayConfig"):
        return None
    api, command_line = [], []
    for key in keys:
        value, option = old.get(key), "--" + key.replace("_", "-")
        if value is None:
            api.append(f"no {key} in the input's ZarrArrayConfig")
            command_line.append(f"no {option}")
        else:
            api.append(f"{key}={tuple(value)} in the input's ZarrArrayConfig")
            command_line.append(f"{option} {','.join(map(str, value))}")
    return api, command_line


class _BlockPredictor:
    """The worker side: the model, input and output of one job, opened once."""

    def __init__(self, job: PredictionJob) -> None:
        from napari_dacapo.checkpoints import load_model, load_run
        from napari_dacapo.experiments.configs import from_dict
        from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
            ZarrArrayConfig,
        )
        from napari_dacapo.predict import (
            prediction_device_plan,
            prediction_input,
            unchecked_intensity_scale,
            unchecked_voxel_size,
        )
        from napari_dacapo.store.file_store import FileStore

        run, store = load_run(job.run, FileStore(job.store_root))
        rescale = tuple(job.rescale) if isinstance(job.rescale, list) else job.rescale
        # predict_blockwise warned of them, once for all workers
        with unchecked_voxel_size(), unchecked_intensity_scale():
            self.raw = prediction_input(run, from_dict(job.input), rescale=rescale)
        self.device, self.plan = prediction_device_plan(run, job.device, job.precision)
        self.model = load_model(run, job.iteration, store, copy=False).to(self.device)
        if self.plan.channels_last:
            self.model = self.model.to(memory_format=self.plan.memory_format(self.raw.dims))
        output = ZarrArrayConfig(
            name="prediction", file_name=Path(job.output_file), dataset=job.output_dataset,
            mode="r+",
        )
        self.output = output.array()

    def __call__(self, block: Any) -> dict[str, np.ndarray] | None:
        from napari_dacapo.predict import non_finite, predict_array

        # Overhanging blocks at the far end are cut to the output array.
        write_roi = block.write_roi.intersect(self.output.roi)
        data, roi, _ = predict_array(
            self.model, self.raw, write_roi, self.device, self.plan.autocast_dtype,
            self.plan.channels_last,
        )
        self.output[roi] = data
        # The parent warns once for all blocks (see _non_finite_blocks).
        return {NON_FINITE: np.ones(1, bool)} if non_finite(data) else None


def _non_finite_blocks(job: PredictionJob) -> int:
    """How many done blocks of ``job`` hold NaN or infinite values: those whose marker is
    not empty (a stat per marker, no file read)."""
    return sum(1 for path in job.marker_dir("predict").iterdir()
               if path.name.isdigit() and path.stat().st_size)


def _resolved_input(config: ArrayConfig) -> tuple[ArrayConfig, list[tuple[Path, str]]]:
    """``config`` with the container of every zarr array it reads (also through wrapping
    configs: intensity rescaling, crops, channels) resolved, and those arrays as
    ``(container, dataset)``. Zarr configs hold absolute paths already; resolved, a
    symlink or ``..`` cannot make a rerun's job look different from the recorded one, nor
    hide that an output is the input."""
    from napari_dacapo.experiments.configs import replace_configs
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
        ZarrArrayConfig,
    )

    sources: list[tuple[Path, str]] = []

    def resolve(array: ZarrArrayConfig) -> ZarrArrayConfig:
        resolved = array.replace(file_name=Path(array.file_name).resolve())
        sources.append((resolved.file_name, resolved.dataset))
        return resolved

    return replace_configs(config, ZarrArrayConfig, resolve), sources


def _check_device(
    run: Run, device: torch.device | str | None, precision: str | None,
    worker_command: str | None,
) -> None:
    """Refuse a device or precision the workers could not use, before any output exists
    (in the workers it would fail every block, each with its traceback).

    Local workers run on this machine, so the whole choice is checked here. Workers that a
    ``worker_command`` starts run elsewhere (a GPU node seen from a login node without
    one): only the device's name is checked.
    """
    if worker_command is None:
        from napari_dacapo.predict import prediction_device_plan

        prediction_device_plan(run, device, precision)
        return
    if device is None or not isinstance(device, str):
        return
    import torch

    try:
        torch.device(device.strip())
    except (RuntimeError, ValueError):
        raise ValueError(
            f"'{device}' is not a device name. Use 'cpu', 'cuda', 'cuda:<index>', 'mps' or "
            f"leave it empty to pick the best device each worker has."
        ) from None


def predict_blockwise(
    run: Run | str,
    checkpoint: Checkpoint,
    input_config: ZarrArrayConfig | str | Path,
    output: str | Path,
    *,
    workers: int = 2,
    roi: Roi | None = None,
    store: FileStore | None = None,
    device: torch.device | str | None = None,
    precision: str | None = None,
    rescale: bool | str | tuple[float, float] = True,
    worker_command: str | None = None,
    threads: int | None = None,
    tiles_per_block: int | None = None,
    max_retries: int = 2,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Predict a zarr array block by block with ``workers`` daisy worker processes.

    The result equals :func:`napari_dacapo.predict.predict` of the same input: blocks are
    groups of its tiles, read with zero padding outside the input. Rerunning an
    interrupted job predicts only the blocks not yet written (see
    :mod:`napari_dacapo.blockwise.scheduler`), also with another number of workers.

    Parameters
    ----------
    run, checkpoint, store, device, precision, rescale
        As for :func:`napari_dacapo.predict.predict_tiles`; the run must be stored. An
        input's own range (``rescale="image"``) is measured once, here, over the whole
        input (not per block), and the job records it.
    input_config
        The input: a ZarrArrayConfig (or any ArrayConfig) or ``"container.zarr/dataset"``.
    output
        ``"container.zarr/dataset"`` for the float32 prediction ``(channels, *spatial)``.
    workers
        How many worker processes daisy runs at once.
    roi
        World region to predict (default: the whole input): inside the input and on its
        voxel grid; grown to the output voxel grid where the model changes the voxel
        size.
    worker_command
        A shell command template with ``{command}``, e.g. ``"bsub -K -n 1 {command}"``,
        that starts a worker elsewhere and waits for it (default: local processes).
    threads
        Compute threads of each worker (default: for local workers the cores shared out,
        ``max(1, cores // workers)``; with ``worker_command`` the libraries' default).
    tiles_per_block
        Prediction tiles along every axis of a block (default: chosen from the region
        and ``workers``; see :class:`BlockLayout`).
    max_retries
        How often a failed block is retried before it is reported.
    overwrite
        Replace an existing output that another job wrote (the same job resumes).
    progress
        Say on stderr what starts, once every check has passed (and how many blocks a
        resumed job has done already), and show daisy's progress bar.

    Returns
    -------
    Path
        ``container.zarr/dataset`` of the prediction.

    Raises
    ------
    BlockwisePredictionError
        If blocks failed on every try; rerunning predicts just those.
    JobStopped
        On Ctrl-C or SIGTERM, once the local workers have ended (a KeyboardInterrupt; see
        :mod:`napari_dacapo.blockwise.stopping`); rerunning finishes the job.
    ValueError, CheckpointError, FileExistsError
        Before anything is written: for an output that is (or holds) the input, a
        checkpoint that cannot be read, a device this machine lacks (local workers), a
        region that is empty, off the voxel grid or not inside the input, or an output
        that another job wrote (without ``overwrite``; where that job was interrupted and
        differs only in its checkpoint iteration or input geometry, the message names the
        arguments that finish it); each naming the fix.

    Warns
    -----
    VoxelSizeWarning
        Before any worker starts, once (not by every worker), if the input's voxel size is
        none of the training data's (see :func:`napari_dacapo.predict.prediction_input`).
    NonFiniteWarning
        After the job, once, if the prediction holds NaN or infinite values (from such
        values in the input).
    """
    from napari_dacapo.checkpoints import load_run, resolve_checkpoint
    from napari_dacapo.experiments.configs import to_dict
    from napari_dacapo.experiments.datasplits.datasets.arrays.array_config import ArrayConfig
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
        ZarrArrayConfig,
    )
    from napari_dacapo.predict import (
        NON_FINITE_PREDICTION,
        OWN_RANGE,
        NonFiniteWarning,
        image_intensity_range,
        prediction_input,
    )

    check_worker_options(workers, worker_command, threads)
    if not isinstance(input_config, (ArrayConfig, str, Path)):
        # Workers in other processes open the input themselves: it must be on disk.
        raise TypeError(
            f"predict_blockwise reads its input from a zarr array, given as "
            f"'container.zarr/dataset' or an ArrayConfig, not a {type(input_config).__name__}."
            f" Write the array to zarr first (write_zarr_array), or predict it in memory "
            f"with napari_dacapo.predict.predict()."
        )
    if not isinstance(input_config, ArrayConfig):
        in_file, in_dataset = split_zarr_path(input_config)
        input_config = ZarrArrayConfig(name="input", file_name=in_file, dataset=in_dataset)
    input_config, sources = _resolved_input(input_config)
    out_file, out_dataset = check_output_path(output, sources)

    run, store = load_run(run, store)
    iteration, _ = resolve_checkpoint(run, checkpoint, store)
    _check_device(run, device, precision, worker_command)
    # Every worker loads the weights; an unreadable file would fail every block, after
    # the output was made.
    store.retrieve_checkpoint(run.name, iteration, training_state=False)
    if isinstance(rescale, str) and rescale == OWN_RANGE:  # measured once, for every worker
        measured = image_intensity_range(run, input_config)
        rescale = (measured.low, measured.high)
    raw = prediction_input(run, input_config, rescale=rescale)
    where = f"input {sources[0][0]}/{sources[0][1]}" if len(sources) == 1 else "input"
    if roi is not None:
        # On the input's grid; BlockLayout grows it to the output's where a model changes
        # the voxel size, as it does the whole input.
        roi = check_roi(roi, raw.roi, raw.voxel_size, where, raw.axis_names[raw.channel_dims:])
    layout = BlockLayout.plan(run.model, raw, roi, output, workers=workers,
                              tiles_per_block=tiles_per_block, overwrite=overwrite)
    out_roi, out_voxel_size = layout.roi, layout.geometry.output_voxel_size
    job = PredictionJob(
        run=run.name, store_root=str(store.root), iteration=int(iteration),
        input=to_dict(input_config),
        rescale=list(rescale) if isinstance(rescale, tuple) else bool(rescale),
        output_file=str(Path(out_file).absolute()), output_dataset=out_dataset,
        roi=[list(map(int, out_roi.offset)), list(map(int, out_roi.shape))],
        device=None if device is None else str(device), precision=precision,
        tiles_per_block=layout.tiles_per_block,
        threads=threads_per_worker(workers, worker_command, threads),
    )
    channels = run.model.num_out_channels
    prepare_output(
        job, shape=(channels, *(int(s) for s in out_roi.shape / out_voxel_size)),
        dtype="float32", voxel_size=out_voxel_size,
        axis_names=["c^", *raw.axis_names[raw.channel_dims:]], units=raw.units,
        chunks=(channels, *layout.tile_shape), overwrite=overwrite,
        display_from=(input_config.file_name, input_config.dataset)
        if isinstance(input_config, ZarrArrayConfig) else None,
    )
    step = layout.step()
    if progress:  # after every check: a refusal is said alone, not after a start
        missing, _, note = resume_note(job, step)
        if missing:
            said = f"Predicting the {where} block by block with {workers} worker(s)" + (
                f": {note}." if note else "")
        else:
            said = f"{job.output} is complete: {note}; nothing is left to do."
        print(said, file=sys.stderr)
    run_step(job, step, workers=workers, worker_command=worker_command,
             max_retries=max_retries, progress=progress)
    finish_output(out_file, out_dataset)
    if non_finite := _non_finite_blocks(job):
        warnings.warn(
            f"{NON_FINITE_PREDICTION} (in {non_finite} of {layout.num_blocks} blocks of "
            f"{job.output})", NonFiniteWarning, stacklevel=2,
        )
    return Path(out_file) / out_dataset
