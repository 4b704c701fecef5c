"""Blockwise prediction of zarr volumes bigger than memory, with daisy workers.

:func:`predict_blockwise` cuts the requested region into blocks of one prediction tile
each (the model's eval output, read from the input grown by the network's context, exactly
as :func:`napari_dacapo.predict.predict` tiles it) and lets daisy hand the blocks to worker
processes. Each worker loads the checkpoint once, predicts its blocks and writes them into
a zarr array that the parent prepared, so nothing ever holds the whole volume.

The job (run, checkpoint iteration, input, region, precision) is recorded in ``job.yaml``
in ``<container>.blocks/<dataset>/``, with the done markers of its blocks beside it;
restarts, worker command templates and failures work as described in
:mod:`napari_dacapo.blockwise.scheduler`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funlib.geometry import Roi

from .scheduler import (
    BlockwiseError,
    BlockwiseJob,
    Step,
    check_worker_options,
    prepare_output,
    run_step,
    split_zarr_path,
)

if TYPE_CHECKING:
    import torch

    from napari_dacapo.checkpoints import Checkpoint
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
        ZarrArrayConfig,
    )
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.store.file_store import FileStore

__all__ = ["BlockwisePredictionError", "PredictionJob", "predict_blockwise"]


class BlockwisePredictionError(BlockwiseError):
    """Blocks of a blockwise prediction were still not written after all retries.

    Attributes
    ----------
    failed_rois
        World write ROIs of the missing blocks.
    """


@dataclass(frozen=True, kw_only=True)
class PredictionJob(BlockwiseJob):
    """A blockwise prediction: one step, ``predict``, whose done markers lie in the job
    folder itself."""

    run: str
    store_root: str
    iteration: int
    input: dict[str, Any]  # the input ArrayConfig, as configs.to_dict writes it
    rescale: bool | list[float]
    device: str | None
    precision: str | None

    kind = "predict"
    steps = ("predict",)
    noun = "prediction"
    error_type = BlockwisePredictionError

    def marker_dir(self, step: str) -> Path:
        return self.folder

    def open_step(self, step: str) -> _BlockPredictor:
        return _BlockPredictor(self)


class _BlockPredictor:
    """The worker side: the model, input and output of one job, opened once."""

    def __init__(self, job: PredictionJob) -> None:
        from napari_dacapo.checkpoints import load_model, load_run
        from napari_dacapo.experiments.configs import from_dict
        from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
            ZarrArrayConfig,
        )
        from napari_dacapo.predict import prediction_device_plan, prediction_input
        from napari_dacapo.store.file_store import FileStore

        run, store = load_run(job.run, FileStore(job.store_root))
        rescale = tuple(job.rescale) if isinstance(job.rescale, list) else job.rescale
        self.raw = prediction_input(run, from_dict(job.input), rescale=rescale)
        self.device, self.plan = prediction_device_plan(run, job.device, job.precision)
        self.model = load_model(run, job.iteration, store).to(self.device)
        if self.plan.channels_last:
            self.model = self.model.to(memory_format=self.plan.memory_format(self.raw.dims))
        output = ZarrArrayConfig(
            name="prediction", file_name=Path(job.output_file), dataset=job.output_dataset,
            mode="r+",
        )
        self.output = output.array()

    def __call__(self, block: Any) -> None:
        from napari_dacapo.predict import predict_array

        # Overhanging blocks at the far end are cut to the output array.
        write_roi = block.write_roi.intersect(self.output.roi)
        data, roi, _ = predict_array(
            self.model, self.raw, write_roi, self.device, self.plan.autocast_dtype,
            self.plan.channels_last,
        )
        self.output[roi] = data


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
    rescale: bool | tuple[float, float] = True,
    worker_command: str | None = None,
    max_retries: int = 2,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Predict a zarr array block by block with ``workers`` daisy worker processes.

    The result equals :func:`napari_dacapo.predict.predict` of the same input: blocks are
    its tiles, read with zero padding outside the input. Rerunning an interrupted job
    predicts only the blocks not yet written (see :mod:`napari_dacapo.blockwise.scheduler`).

    Parameters
    ----------
    run, checkpoint, store, device, precision, rescale
        As for :func:`napari_dacapo.predict.predict_tiles`; the run must be stored.
    input_config
        The input: a ZarrArrayConfig (or any ArrayConfig) or ``"container.zarr/dataset"``.
    output
        ``"container.zarr/dataset"`` for the float32 prediction ``(channels, *spatial)``.
    workers
        How many worker processes daisy runs at once.
    roi
        World region to predict (default: the whole input), grown to the output voxel
        grid.
    worker_command
        A shell command template with ``{command}``, e.g. ``"bsub -K -n 1 {command}"``,
        that starts a worker elsewhere and waits for it (default: local processes).
    max_retries
        How often a failed block is retried before it is reported.
    overwrite
        Replace an existing output that another job wrote (the same job resumes).
    progress
        Show daisy's progress bar.

    Returns
    -------
    Path
        ``container.zarr/dataset`` of the prediction.

    Raises
    ------
    BlockwisePredictionError
        If blocks failed on every try; rerunning predicts just those.
    """
    from napari_dacapo.checkpoints import load_run, resolve_checkpoint
    from napari_dacapo.experiments.configs import to_dict
    from napari_dacapo.experiments.datasplits.datasets.arrays.array_config import ArrayConfig
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
        ZarrArrayConfig,
    )
    from napari_dacapo.predict import TileGeometry, prediction_input

    check_worker_options(workers, worker_command)
    if not isinstance(input_config, ArrayConfig):
        in_file, in_dataset = split_zarr_path(input_config)
        input_config = ZarrArrayConfig(name="input", file_name=in_file, dataset=in_dataset)
    out_file, out_dataset = split_zarr_path(output)
    if not out_dataset:
        raise ValueError(f"output '{output}' names no dataset; give container.zarr/dataset.")

    run, store = load_run(run, store)
    iteration, _ = resolve_checkpoint(run, checkpoint, store)
    raw = prediction_input(run, input_config, rescale=rescale)
    geometry = TileGeometry.for_model(run.model, raw.voxel_size)
    out_voxel_size = geometry.output_voxel_size
    if roi is not None and roi.dims != raw.dims:
        raise ValueError(
            f"roi {roi} has {roi.dims} axes, but the input has {raw.dims} spatial axes "
            f"({', '.join(raw.axis_names[raw.channel_dims:])}); give one per axis."
        )
    out_roi = (roi or raw.roi).snap_to_grid(out_voxel_size, mode="grow")
    job = PredictionJob(
        run=run.name, store_root=str(store.root), iteration=int(iteration),
        input=to_dict(input_config),
        rescale=list(rescale) if isinstance(rescale, tuple) else bool(rescale),
        output_file=str(Path(out_file).absolute()), output_dataset=out_dataset,
        roi=[list(map(int, out_roi.offset)), list(map(int, out_roi.shape))],
        device=None if device is None else str(device), precision=precision,
    )
    channels = run.model.num_out_channels
    tile_shape = tuple(int(s) for s in geometry.output_size / out_voxel_size)
    prepare_output(
        job, shape=(channels, *(int(s) for s in out_roi.shape / out_voxel_size)),
        dtype="float32", voxel_size=out_voxel_size,
        axis_names=["c^", *raw.axis_names[raw.channel_dims:]], units=raw.units,
        chunks=(channels, *tile_shape), overwrite=overwrite,
    )
    # One block is one tile: daisy's read ROI is the tile's input, its write ROI the tile's
    # output, both relative to the total ROI = requested output region grown by the context.
    # "overhang" keeps the last blocks that stick out; workers cut them to the output.
    step = Step(
        "predict", "predicted", total_roi=out_roi.grow(geometry.context, geometry.context),
        read_roi=Roi((0,) * raw.dims, geometry.input_size),
        write_roi=Roi(geometry.context, geometry.output_size),
    )
    run_step(job, step, workers=workers, worker_command=worker_command,
             max_retries=max_retries, progress=progress)
    return Path(out_file) / out_dataset
