"""Validation: predict each validation dataset, post-process with every parameter set,
evaluate, store the scores and the best iteration per (dataset, criterion)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from napari_dacapo.experiments.validation_iteration_scores import ValidationIterationScores
from napari_dacapo.predict import predict_array

if TYPE_CHECKING:
    from napari_dacapo.checkpoints import Checkpoint
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.store.file_store import FileStore
    from napari_dacapo.train import ValidationDone

logger = logging.getLogger(__name__)


def validate_run(
    run: Run,
    iteration: int,
    store: FileStore | None = None,
    device: torch.device | str | None = None,
    plan: Any = None,
) -> ValidationDone:
    """Validate ``run``'s current model as iteration ``iteration``.

    Returns a :class:`~napari_dacapo.train.ValidationDone` event with the scores, the best
    iteration per criterion so far, and the prediction and post-processed arrays of the
    first dataset's best parameter set (for display).
    """
    from napari_dacapo.experiments.device import device_plan_for
    from napari_dacapo.train import ValidationDone

    store = store or run.store
    if plan is None or device is None:
        device, plan = device_plan_for(run.config.trainer_config, device)
    device = torch.device(device)
    run.model.to(device)

    scores = run.validation_scores
    criteria = scores.criteria
    parameters = list(run.task.parameters)
    per_dataset: list[list[list[float]]] = []
    arrays: dict[str, Any] = {}
    for d, dataset in enumerate(run.datasplit.validate or []):
        gt_roi = dataset.gt.roi.intersect(dataset.raw.roi)
        prediction, roi, voxel_size = predict_array(
            run.model, dataset.raw, gt_roi, device, plan.autocast_dtype, plan.channels_last
        )
        roi = roi.intersect(gt_roi).snap_to_grid(voxel_size, mode="shrink")
        prediction = prediction[(slice(None), *_crop(roi, prediction, voxel_size, gt_roi))]
        gt = dataset.gt.read(roi)
        mask = dataset.mask.read(roi) if dataset.mask is not None else None
        rows = []
        processed = []
        for p in parameters:
            segmentation = run.task.post_processor.process(prediction, p)
            result = run.task.evaluator.evaluate(segmentation, gt, voxel_size, mask)
            rows.append([float(result[c]) for c in criteria])
            processed.append(segmentation)
        per_dataset.append(rows)
        if rows:
            best = _best_row(rows, criteria, run.task.evaluation_scores)
            outputs = {"prediction": prediction, "segmentation": processed[best]}
            _write_outputs(store, run.name, iteration, str(dataset), outputs, roi, voxel_size)
            if d == 0:
                arrays = {
                    name: (data, roi.offset, voxel_size) for name, data in outputs.items()
                }
                arrays["parameters"] = str(parameters[best])

    iteration_scores = ValidationIterationScores(iteration, per_dataset)
    scores.scores = [s for s in scores.scores if s.iteration != iteration]
    scores.add_iteration_scores(iteration_scores)
    store.store_validation_iteration_scores(run.name, scores)
    best = _store_best(run, store, scores)
    return ValidationDone(iteration, iteration_scores, list(criteria), best, arrays)


def validate_checkpoint(
    run: Run | str,
    iteration: Checkpoint,
    store: FileStore | None = None,
    device: torch.device | str | None = None,
) -> ValidationDone:
    """Validate the stored checkpoint ``iteration`` of a run and store its scores and the
    updated bests, as training does at each validation interval.

    The run is read afresh from ``store`` (a :class:`Run` object only gives its name), so
    the scores of every validated iteration are kept. The run's lock is held meanwhile:
    a run that is training is refused (:class:`~napari_dacapo.store.RunLockedError`).

    Raises
    ------
    ValueError
        If the run has no validation data.
    CheckpointError, StoreError
        For a missing checkpoint or run (the messages list those stored).
    """
    from napari_dacapo.checkpoints import load_run, resolve_checkpoint

    if not isinstance(run, str):
        run, store = run.name, store or run.store
    run, store = load_run(run, store)
    done, _ = resolve_checkpoint(run, iteration, store)
    if not run.datasplit.validate:
        raise ValueError(
            f"Run '{run.name}' has no validation data, so there is nothing to score. Add "
            f"validate_configs to its datasplit config."
        )
    with store.lock(run.name):
        run.validation_scores.scores = store.retrieve_validation_iteration_scores(run.name)
        weights = store.retrieve_checkpoint(run.name, done, training_state=False)["model"]
        run.model.load_state_dict(weights)
        return validate_run(run, done, store=store, device=device)


def _write_outputs(store, run_name, iteration, dataset, outputs, roi, voxel_size) -> None:
    """Keep the validation prediction and the best segmentation on disk, so a run folder
    opened later (in napari, or by DaCapo tools) shows them."""
    from napari_dacapo.experiments.datasplits.datasets.arrays.array import default_axis_names
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import write_zarr_array

    container = store.validation_container(run_name).container
    for name, data in outputs.items():
        channels = data.ndim == len(voxel_size) + 1
        write_zarr_array(
            container, f"{iteration}/{dataset}/{name}", data, voxel_size, roi.offset,
            default_axis_names(len(voxel_size), channels=channels),
        )


def _crop(roi, prediction: np.ndarray, voxel_size, full_roi) -> tuple[slice, ...]:
    """Slices of ``prediction`` (which starts at the grid-grown ``full_roi``) for ``roi``."""
    begin = full_roi.snap_to_grid(voxel_size, mode="grow").begin
    start = (roi.begin - begin) / voxel_size
    return tuple(slice(int(b), int(b + s)) for b, s in zip(start, roi.shape / voxel_size))


def _best_row(rows: list[list[float]], criteria: list[str], evaluation_scores) -> int:
    """Index of the parameter set that is best on the first criterion (display only)."""
    if not criteria:
        return 0
    values = np.array([r[0] for r in rows], dtype=float)
    if np.all(np.isnan(values)):
        return 0
    higher = evaluation_scores.higher_is_better(criteria[0])
    return int(np.nanargmax(values) if higher else np.nanargmin(values))


def _store_best(run: Run, store: FileStore, scores) -> dict[str, Any]:
    """Record the best iteration and parameters per (dataset, criterion) and over all
    datasets, each criterion with its own direction. Returns {criterion: (iteration, value)}
    over all datasets."""
    best: dict[str, Any] = {}
    for dataset in [*scores.datasets, None]:
        for criterion in scores.criteria:
            found = scores.best(criterion, dataset=dataset)
            if found is None:
                continue
            iteration, parameters, value = found
            store.store_best(
                run.name, None if dataset is None else str(dataset), criterion,
                iteration, getattr(parameters, "id", None), value,
            )
            if dataset is None:
                best[criterion] = (iteration, value)
    return best
