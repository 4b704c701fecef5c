"""The training panel's check of the picked data's content, in a worker.

Reading the data (NaN values in the raw, labels the task cannot make targets from) is too
slow for the GUI thread on large layers, and waiting for Train to find it makes the user
press Train to learn that the data cannot be trained on. :class:`DataCheck` runs
:func:`data_problem` in a worker whenever the data or settings change and keeps the
answer until they change again; training runs the same checks before it starts. The same
worker finds what trains but likely not as meant (:func:`data_warnings`: a class with no
labelled voxel), which the panel shows without refusing the data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from napari.utils.notifications import show_warning

from napari_dacapo.experiments.configs import Config
from napari_dacapo.experiments.datasplits.datasets.checks import data_warnings
from napari_dacapo.gui.background_answer import BackgroundAnswer

__all__ = ["DATA_PROBLEMS", "DataCheck", "data_problem", "data_warnings"]

logger = logging.getLogger(__name__)

#: What the data checks and a task's targets raise for data that cannot be trained on
#: (checks.DataError is a ValueError); the message names the problem and its fix.
DATA_PROBLEMS = (ValueError, TypeError)
#: Most bytes of labels :func:`data_problem` makes targets from (larger: training does).
TARGET_CHECK_BYTES = 16 * 2**20


def data_problem(config: Config) -> str:
    """Why the data of run ``config`` cannot be trained on, or '' (Qt-free; reads the
    data, so it runs in a worker): the content checks training starts with (NaN in raw,
    labels that are not ids or empty ...) and whether the task can make its targets from
    the labels (class ids beyond the task's classes, negative ids), which training would
    otherwise find only in its first batch."""
    from napari_dacapo.experiments.datasplits.datasets.checks import (
        check_training_dataset,
        check_validation_dataset,
        overlap_roi,
    )

    try:
        datasplit = config.datasplit_config.datasplit_type(config.datasplit_config)
        predictor = config.task_config.task_type(config.task_config).predictor
        for dataset in datasplit.train:
            check_training_dataset(dataset)
            gt = dataset.gt
            if gt is None:
                continue
            roi = overlap_roi(dataset)
            voxels = int(np.prod(roi.shape / gt.voxel_size)) * (gt.num_channels or 1)
            if voxels * gt.dtype.itemsize <= TARGET_CHECK_BYTES:
                predictor.create_target(gt[roi], gt.voxel_size)
        for dataset in datasplit.validate or []:
            check_validation_dataset(dataset)
    except DATA_PROBLEMS as error:
        return str(error)
    return ""


def _checked(config: Config) -> tuple[str, list[str]]:
    """:func:`data_problem` and, for data without one, :func:`data_warnings` (worker).
    Looked up at call time, so that a test can replace the module's functions."""
    problem = globals()["data_problem"](config)
    if problem:
        return problem, []
    try:
        return "", globals()["data_warnings"](config)
    except DATA_PROBLEMS as error:  # data_problem found none; a warning is not worth a crash
        logger.warning("The data warnings could not be found: %s", error)
        return "", []


class DataCheck:
    """:func:`data_problem` and :func:`data_warnings` of the current data, found in a
    worker and kept until :meth:`invalidate` says the data or settings changed."""

    def __init__(self) -> None:
        self._version = 0
        self._answers = BackgroundAnswer(_unchecked, on_found=self._on_found)

    _checking = property(lambda self: self._answers.worker)  # tests wait for it to end

    def invalidate(self) -> None:
        """The data or settings changed: the last check no longer holds."""
        self._version += 1

    def problem(self, config: Config, on_checked: Callable[[], None]) -> str:
        """What :func:`data_problem` found for the data as it is now; '' while that is not
        known yet: the check then runs in a worker (one at a time, so a check of outdated
        data is followed by one of the current) and ``on_checked()`` is called (GUI
        thread) when it ends."""
        answer = self._answers.ask(self._version, _checked, config, on_ended=on_checked)
        return "" if answer is None else answer[0]

    def warnings(self) -> list[str]:
        """What :func:`data_warnings` found for the data as it is now ([] while that is not
        known yet, or the data has a problem)."""
        answer = self._answers.kept(self._version)
        return [] if answer is None else answer[1]

    def close(self) -> None:
        """No more checks, nor callbacks from one that runs (the panel is going away)."""
        self._answers.close()

    def _on_found(self, version: int, answer: tuple[str, list[str]],
                  before: tuple[str, list[str]] | None) -> None:
        # Notified once per change of the answer (the check runs again at every change of
        # data or settings); the panel's status shows it for as long as it holds.
        if version != self._version:
            return
        problem, warnings = answer
        last_problem, last_warnings = before or ("", [])
        if problem and problem != last_problem:
            show_warning(f"Cannot train on this data: {problem}")
        for warning in warnings:
            if warning not in last_warnings:
                show_warning(warning)


def _unchecked(error: Exception) -> tuple[str, list[str]]:
    # Not a data problem the check knows (e.g. the data could not be read): said once as
    # a warning, not a refusal; training's own checks name it if it persists.
    logger.debug("The data check failed", exc_info=error)
    return "", [f"The data could not be checked ({type(error).__name__}: {error}); Train "
                f"checks it again as the run starts."]
