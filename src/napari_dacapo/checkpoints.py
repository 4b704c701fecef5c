"""Which stored weights and post-processing to use: a run given by object or name, a
checkpoint given as an iteration, ``"latest"`` or ``"best:<criterion>"``, and the best
post-processor parameters for a criterion.

Everything here only reads the store, so a model can be applied while its run trains.
"""

from __future__ import annotations

import copy as _copy
import warnings
from typing import TYPE_CHECKING

from napari_dacapo.store.file_store import CheckpointError, FileStore

if TYPE_CHECKING:
    from napari_dacapo.experiments.model import Model
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.experiments.tasks.post_processors.post_processor_parameters import (
        PostProcessorParameters,
    )

__all__ = [
    "Checkpoint",
    "load_run",
    "resolve_criterion",
    "resolve_checkpoint",
    "criterion_of",
    "load_model",
    "best_parameters",
]

#: An iteration number, ``"latest"`` or ``"best:<criterion>"`` (digits in a string are an
#: iteration, as the CLI passes them).
Checkpoint = int | str

BEST_PREFIX = "best:"


def load_run(run: Run | str, store: FileStore | None = None) -> tuple[Run, FileStore]:
    """The run and the store that holds it.

    A name is looked up in ``store`` (default: the default :class:`FileStore`) and built
    without loading any checkpoint, optimizer state or starter weights; a :class:`Run`
    is returned as it is, with ``store`` or its own store.

    Raises
    ------
    StoreError
        If no run of that name is stored (the message lists the stored runs).
    """
    from napari_dacapo.experiments.run import Run

    if isinstance(run, Run):
        return run, store or run.store
    if not isinstance(run, str):
        raise TypeError(
            f"run must be a Run or the name of a stored run, not {type(run).__name__}."
        )
    store = store or FileStore()
    config = store.retrieve_run_config(run)
    return Run(config, load_starter_model=False, store=store, resume=False), store


def resolve_criterion(run: Run, criterion: str, *, in_checkpoint: bool = False) -> str:
    """The run's criterion named ``criterion``: an exact name, or the unique criterion
    ending in ``__<criterion>`` (``"f1_score"`` for a single channel's
    ``"<channel>__f1_score"``). ``in_checkpoint``: it was given in a checkpoint
    ``"best:<criterion>"``, so the error's example takes that form.

    Raises
    ------
    ValueError
        If no criterion, or several, match (the message lists the criteria).
    """
    criteria = list(run.task.evaluation_scores.criteria)
    if criterion in criteria:
        return criterion
    matches = [c for c in criteria if c.endswith(f"__{criterion}")]
    if len(matches) == 1:
        return matches[0]
    problem = (
        f"matches several criteria ({', '.join(matches)})" if matches
        else "is not a criterion of its task"
    )
    raise ValueError(
        f"'{criterion}' {problem}. Run '{run.name}' is scored by: {', '.join(criteria)}. "
        f"Name one of those, e.g. "
        f"'{BEST_PREFIX if in_checkpoint else ''}{criteria[0] if criteria else '<criterion>'}'."
    )


def _best_record(run: Run, store: FileStore, criterion: str, *, in_checkpoint: bool) -> dict:
    """The stored best for ``criterion`` (resolved), or a clear error if none is stored.
    ``in_checkpoint``: it names a checkpoint (``"best:<criterion>"``), which another
    checkpoint can replace; else it picks post-processing parameters, which only
    validation finds."""
    criterion = resolve_criterion(run, criterion, in_checkpoint=in_checkpoint)
    best = store.retrieve_best(run.name, criterion)
    if best is None:
        stored = store.checkpoint_iterations(run.name)
        if in_checkpoint:
            raise CheckpointError(
                f"Run '{run.name}' has no best iteration for '{criterion}' yet: it has not "
                f"been validated. Validate a checkpoint first (napari-dacapo validate --run "
                f"{run.name} --iteration N), or use 'latest' or an iteration "
                f"({stored or 'none stored'})."
            )
        fix = (f"Validate it first: napari-dacapo validate --run {run.name} --iteration latest."
               if stored else "It has no checkpoint yet: train it, then validate it.")
        raise CheckpointError(
            f"Run '{run.name}' has no best post-processing parameters for '{criterion}' yet: "
            f"it has not been validated. {fix}"
        )
    return best


def resolve_checkpoint(
    run: Run, checkpoint: Checkpoint, store: FileStore
) -> tuple[int, str | None]:
    """The iteration that ``checkpoint`` names, and the criterion when it is
    ``"best:<criterion>"`` (else None).

    Raises
    ------
    ValueError
        For a malformed checkpoint or an unknown criterion.
    CheckpointError
        If the iteration has no stored checkpoint (listing those stored), or the criterion
        has not been validated yet.
    """
    if (named := criterion_of(checkpoint)) is None:
        return store.stored_iteration(run.name, checkpoint), None
    best = _best_record(run, store, named, in_checkpoint=True)
    criterion = best["criterion"]
    # Retention keeps every best: a best without its file was deleted (or pruned by hand).
    why = f" (the best for '{criterion}'; that checkpoint is missing: pruned or deleted)"
    return store.stored_iteration(run.name, int(best["iteration"]), why), criterion


def criterion_of(checkpoint: Checkpoint) -> str | None:
    """The criterion of a ``"best:<criterion>"`` checkpoint, else None."""
    if isinstance(checkpoint, str) and checkpoint.startswith(BEST_PREFIX):
        return checkpoint[len(BEST_PREFIX):]
    return None


def load_model(run: Run, iteration: int, store: FileStore, copy: bool = True) -> Model:
    """A copy of the run's model holding the weights stored at ``iteration``, on the CPU.

    The run's own model and optimizer are left untouched (a run that is training keeps
    its state), and nothing is written. ``copy=False`` loads the weights into the run's
    own model instead, for a run built only to predict (copying costs ~7 ms per call).
    """
    state = store.retrieve_checkpoint(run.name, iteration, training_state=False)["model"]
    model = (_copy.deepcopy(run.model) if copy else run.model).cpu()
    model.load_state_dict(state)
    return model


def best_parameters(
    run: Run, criterion: str | None, store: FileStore
) -> PostProcessorParameters:
    """The post-processor parameter set that validation found best for ``criterion``.

    Without a criterion the task's first parameter set is returned, with a warning when
    the task has others to choose from.

    Raises
    ------
    ValueError, CheckpointError
        For an unknown or not yet validated criterion, or a stored parameter id that the
        task no longer has.
    """
    parameters = list(run.task.parameters)
    if not parameters:
        raise ValueError(f"The task of run '{run.name}' has no post-processing parameters.")
    if criterion is None:
        if len(parameters) == 1:  # nothing to choose from
            return parameters[0]
        warnings.warn(
            f"No criterion given: post-processing with the first parameter set "
            f"({parameters[0]}). Pass a criterion to use the set that validation found best.",
            stacklevel=2,
        )
        return parameters[0]
    best = _best_record(run, store, criterion, in_checkpoint=False)
    by_id = {p.id: p for p in parameters}
    if best.get("parameters_id") not in by_id:
        raise ValueError(
            f"The best parameter set for '{best['criterion']}' of run '{run.name}' has id "
            f"{best.get('parameters_id')}, which its post-processor does not offer (ids "
            f"{sorted(by_id)}). Validate the run again to record the best set anew."
        )
    return by_id[best["parameters_id"]]
