"""Prediction with a stored run: a checkpoint of a run (or of its name) predicts a plain
numpy, dask or zarr array (:func:`predict_tiles`, :func:`predict`), and post-processes the
prediction with the parameters validation found best (:func:`apply`,
:func:`post_processing`)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .blocks import assemble, predict_blocks
from .events import PredictEvent
from .inputs import prediction_input
from .non_finite_values import warn_if_non_finite

if TYPE_CHECKING:
    from napari_dacapo.checkpoints import Checkpoint
    from napari_dacapo.experiments.device import PrecisionPlan
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.store.file_store import FileStore

__all__ = ["prediction_device_plan", "predict_tiles", "predict", "apply", "post_processing"]


def prediction_device_plan(
    run: Run, device: torch.device | str | None, precision: str | None
) -> tuple[torch.device, PrecisionPlan]:
    """The device and precision plan for predicting with ``run``: the run's trainer config,
    with ``device`` and ``precision`` overriding it when given (in-process and blockwise)."""
    from napari_dacapo.experiments.device import choose_precision, device_plan_for

    trainer_config = run.config.trainer_config
    device, plan = device_plan_for(trainer_config, device)
    if precision is not None:
        plan = choose_precision(
            device, precision, getattr(trainer_config, "channels_last", "auto")
        )
    return device, plan


def predict_tiles(
    run: Run | str,
    checkpoint: Checkpoint,
    raw: Any,
    *,
    voxel_size: Sequence[int] | None = None,
    offset: Sequence[int] | None = None,
    rescale: bool | str | tuple[float, float] = True,
    store: FileStore | None = None,
    device: torch.device | str | None = None,
    precision: str | None = None,
) -> Iterator[PredictEvent]:
    """Predict ``raw`` with a stored checkpoint of ``run``, tile by tile.

    Yields :class:`PredictionStarted` (with the checkpoint's iteration), then one
    :class:`TilePredicted` per tile. Stop iterating (or ``close()`` the generator) to
    cancel; the device's memory is released when the generator ends. An array sent in
    reply to :class:`PredictionStarted` is filled in place (see :func:`predict_blocks`).

    Parameters
    ----------
    run
        A :class:`~napari_dacapo.experiments.run.Run` or the name of a stored run. A
        Run's own model is never changed: the checkpoint is loaded into a copy (a run given
        by name is built for this call only and loads it directly).
    checkpoint
        An iteration, ``"latest"`` or ``"best:<criterion>"`` (the iteration validation
        found best for that criterion).
    raw, voxel_size, offset, rescale
        The input; see :func:`prediction_input`.
    store
        The store holding the run (default: the run's, or the default store for a name).
    device
        Where to compute (default: the trainer config's choice, a GPU when present).
    precision
        ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (default: the trainer config's,
        where ``"auto"`` is bf16 on hardware that gains from it).
    """
    from napari_dacapo.checkpoints import load_model, load_run, resolve_checkpoint
    from napari_dacapo.experiments.device import release_device_memory

    private = isinstance(run, str)  # built here, only to predict: no copy of its model
    run, store = load_run(run, store)
    iteration, _ = resolve_checkpoint(run, checkpoint, store)
    array = prediction_input(run, raw, voxel_size, offset, rescale)
    device, plan = prediction_device_plan(run, device, precision)
    memory_format = (
        plan.memory_format(array.dims) if plan.channels_last else torch.preserve_format
    )
    model = load_model(run, iteration, store, copy=not private)
    model = model.to(device, memory_format=memory_format)
    blocks = predict_blocks(model, array, None, device, plan.autocast_dtype, plan.channels_last)
    try:
        with contextlib.closing(blocks):  # a cancelled caller closes the tiling at once
            started = dataclasses.replace(next(blocks), iteration=iteration)
            out = yield started  # an array to fill, from assemble (see predict_blocks)
            if started.num_tiles:
                yield blocks.send(out)
                yield from blocks
    finally:
        model.cpu()
        release_device_memory(device)


def predict(
    run: Run | str,
    checkpoint: Checkpoint,
    raw: Any,
    **kwargs: Any,
) -> np.ndarray:
    """Predict ``raw`` with a stored checkpoint of ``run``.

    Returns the prediction ``(channels, *spatial)`` float32 covering the whole input
    (spatial shape: the input's, times the upsampling factor of upsampling networks),
    after the task's eval activation. Keyword arguments are those of
    :func:`predict_tiles`.

    Warns
    -----
    NonFiniteWarning
        If the prediction holds NaN or infinite values (from such values in the input).
    """
    prediction = assemble(predict_tiles(run, checkpoint, raw, **kwargs))[0]
    warn_if_non_finite(prediction)
    return prediction


def apply(
    run: Run | str,
    checkpoint: Checkpoint,
    raw: Any,
    criterion: str | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """Predict ``raw`` and post-process the prediction into labels, with the
    post-processor parameters that validation found best.

    Parameters
    ----------
    criterion
        Whose best parameters to use. Default: the criterion of a ``"best:<criterion>"``
        checkpoint; without either, the first parameter set is used (with a warning).
    **kwargs
        As for :func:`predict_tiles`.

    Returns
    -------
    numpy.ndarray
        What the task's post-processor returns (labels, or masks per channel).
    """
    from napari_dacapo.checkpoints import criterion_of, load_run

    run, kwargs["store"] = load_run(run, kwargs.get("store"))
    criterion = criterion or criterion_of(checkpoint)
    # Parameters first: a criterion that was never validated fails before any prediction.
    process = post_processing(run, criterion, kwargs["store"])
    return process(predict(run, checkpoint, raw, **kwargs))


def post_processing(
    run: Run | str, criterion: str | None = None, store: FileStore | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """The run's post-processor with the parameters validation found best for
    ``criterion`` (the first set, with a warning, when None), as a function from a
    prediction ``(channels, *spatial)`` to its segmentation.

    Use it to post-process a prediction already made (e.g. by :func:`predict_tiles`).
    """
    from napari_dacapo.checkpoints import best_parameters, load_run

    run, store = load_run(run, store)
    parameters = best_parameters(run, criterion, store)
    post_processor = run.task.post_processor
    return lambda prediction: post_processor.process(prediction, parameters)
