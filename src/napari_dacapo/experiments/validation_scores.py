"""Validation scores of a run across iterations (``dacapo.experiments.validation_scores``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from .datasplits.datasets.dataset import Dataset
from .tasks.evaluators.evaluation_scores import EvaluationScores
from .tasks.post_processors.post_processor_parameters import PostProcessorParameters
from .validation_iteration_scores import ValidationIterationScores

DIMS = ("iterations", "datasets", "parameters", "criteria")


def dataset_name(dataset: Dataset | str) -> str:
    """The label of a validation dataset in score arrays and in the store."""
    return str(getattr(dataset, "name", dataset))


@dataclass
class ValidationScores:
    """The scores of every validated iteration, per dataset, parameter set and criterion.

    Attributes
    ----------
    parameters
        The post-processor parameter sets evaluated at each iteration.
    datasets
        The validation datasets evaluated at each iteration.
    evaluation_scores
        Names the criteria and the direction (higher or lower is better) of each.
    scores
        One :class:`ValidationIterationScores` per validated iteration, kept sorted by
        iteration; each is indexed ``scores[dataset][parameter][criterion]``.

    Notes
    -----
    In :meth:`to_xarray` the ``parameters`` coordinate holds the
    :class:`PostProcessorParameters` objects themselves (hashable frozen dataclasses, so
    ``data.sel(parameters=p)`` works and :meth:`get_best` reports the winning object with
    its values), with their ids as the extra coordinate ``parameter_ids``.

    Unlike DaCapo, :meth:`get_best` applies each criterion's own direction, and NaN scores
    are never chosen as best.
    """

    parameters: list[PostProcessorParameters]
    datasets: list[Dataset]
    evaluation_scores: EvaluationScores
    scores: list[ValidationIterationScores] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.parameters = list(self.parameters)
        self.datasets = list(self.datasets)
        given, self.scores = list(self.scores), []
        for iteration_scores in given:
            self.add_iteration_scores(iteration_scores)

    # -- editing -----------------------------------------------------------------------------

    def subscores(self, iteration_scores: list[ValidationIterationScores]) -> ValidationScores:
        """A new ValidationScores with the same parameters, datasets and criteria but only
        ``iteration_scores``."""
        return ValidationScores(
            self.parameters, self.datasets, self.evaluation_scores, scores=iteration_scores
        )

    def add_iteration_scores(self, iteration_scores: ValidationIterationScores) -> None:
        """Add the scores of one iteration.

        Raises
        ------
        ValueError
            If that iteration has scores already, or the scores are not shaped
            ``[datasets][parameters][criteria]``.
        """
        iteration = iteration_scores.iteration
        if any(s.iteration == iteration for s in self.scores):
            raise ValueError(
                f"Iteration {iteration} has validation scores already. Call "
                f"delete_after({iteration}) first to replace them."
            )
        self._check_shape(iteration_scores)
        self.scores.append(iteration_scores)
        self.scores.sort(key=lambda s: s.iteration)

    def _check_shape(self, iteration_scores: ValidationIterationScores) -> None:
        n_d, n_p, n_c = len(self.datasets), len(self.parameters), len(self.criteria)
        s = iteration_scores.scores
        if len(s) == n_d and all(
            len(p) == n_p and all(len(c) == n_c for c in p) for p in s
        ):
            return
        raise ValueError(
            f"Validation scores of iteration {iteration_scores.iteration} must be nested "
            f"[datasets][parameters][criteria] lists of sizes [{n_d}][{n_p}][{n_c}]. Compute "
            f"them with this run's validation datasets, post-processor parameters and "
            f"evaluator criteria ({', '.join(self.criteria)})."
        )

    def delete_after(self, iteration: int) -> None:
        """Keep only the scores of iterations before ``iteration``."""
        self.scores = [s for s in self.scores if s.iteration < iteration]

    def validated_until(self) -> int:
        """The last validated iteration plus one, 0 if none."""
        return max((s.iteration for s in self.scores), default=-1) + 1

    def compare(
        self, existing_iteration_scores: list[ValidationIterationScores]
    ) -> tuple[bool, int]:
        """Compare scores from elsewhere (e.g. the store) with these local ones.

        Local scores take priority. Returns ``(replace, from_iteration)``: if the existing
        scores reach further than the local ones, ``(True, 0)`` — delete the existing
        scores and replace them with the local ones. Otherwise ``(False, i)`` with ``i`` the
        existing scores' last iteration plus one — append the local scores from iteration
        ``i`` on. No existing scores give ``(False, 0)``.
        """
        if not existing_iteration_scores:
            return False, 0
        existing_until = max(s.iteration for s in existing_iteration_scores) + 1
        if existing_until > self.validated_until():
            return True, 0
        return False, existing_until

    # -- names -------------------------------------------------------------------------------

    @property
    def criteria(self) -> list[str]:
        """The evaluation criteria, in score order."""
        return self.evaluation_scores.criteria

    @property
    def parameter_names(self) -> list[str]:
        """The names of the post-processor parameters (empty without parameter sets)."""
        return self.parameters[0].parameter_names if self.parameters else []

    @property
    def dataset_names(self) -> list[str]:
        """The validation datasets' names, as in the ``datasets`` coordinate."""
        return [dataset_name(d) for d in self.datasets]

    # -- analysis ----------------------------------------------------------------------------

    def to_xarray(self) -> xr.DataArray:
        """All scores as a DataArray with dims (iterations, datasets, parameters, criteria).

        Coordinates: iteration numbers, dataset names, the parameter objects (with their
        ids as ``parameter_ids``) and criterion names. With no scores yet, the
        ``iterations`` dimension is empty.
        """
        shape = (len(self.scores), len(self.datasets), len(self.parameters), len(self.criteria))
        values = np.array([s.scores for s in self.scores], dtype=float).reshape(shape)
        parameters = np.empty(len(self.parameters), dtype=object)
        parameters[:] = self.parameters
        return xr.DataArray(
            values,
            dims=DIMS,
            coords={
                "iterations": [s.iteration for s in self.scores],
                "datasets": self.dataset_names,
                "parameters": parameters,
                "parameter_ids": ("parameters", [p.id for p in self.parameters]),
                "criteria": list(self.criteria),
            },
            name="scores",
        )

    def get_best(self, data: xr.DataArray, dim: str) -> tuple[xr.DataArray, xr.DataArray]:
        """The best value along ``dim``, per criterion and in that criterion's direction.

        Parameters
        ----------
        data
            Scores with a ``criteria`` dimension (e.g. from :meth:`to_xarray`, or a
            selection of it; ``data.sel(criteria=[name])`` keeps the dimension).
        dim
            The dimension to choose along, e.g. ``"parameters"`` or ``"iterations"``.

        Returns
        -------
        best_indexes, best_values
            Arrays without ``dim``: the ``dim`` coordinate label of the best entry (e.g. the
            iteration number or the parameter object) and its value. NaN scores are never
            chosen; the first best entry wins ties. Where all values along ``dim`` are NaN,
            the value is NaN and the label NaN (numeric labels) or None (other labels).

        Raises
        ------
        ValueError
            If ``data`` has no ``criteria`` dimension, no (or an empty) ``dim``, or a
            criterion the evaluator does not know.
        """
        if "criteria" not in data.dims:
            raise ValueError(
                "Cannot choose a best score without knowing the criterion: the data has no "
                "'criteria' dimension. Select criteria as a list, data.sel(criteria=[name])."
            )
        if dim == "criteria" or dim not in data.dims:
            raise ValueError(
                f"Cannot choose the best along '{dim}': pick one of the data's other "
                f"dimensions {[d for d in data.dims if d != 'criteria']}."
            )
        if data.sizes[dim] == 0:
            raise ValueError(f"Cannot choose the best along '{dim}': it is empty.")
        unknown = [str(c) for c in data["criteria"].values if str(c) not in self.criteria]
        if unknown:
            raise ValueError(
                f"Unknown criteria {unknown}; this evaluator scores {self.criteria}."
            )

        data = data.transpose(dim, ...)
        values = data.values.astype(float)
        higher = np.array(
            [self.evaluation_scores.higher_is_better(str(c)) for c in data["criteria"].values]
        )
        direction_shape = [1] * values.ndim
        direction_shape[data.dims.index("criteria")] = higher.size
        # Sort ascending on a key where "better" is smaller; argsort puts NaN last, so the
        # first entry is the best non-NaN value (stable: the first of equals wins).
        key = np.where(higher.reshape(direction_shape), -values, values)
        position = np.argsort(key, axis=0, kind="stable")[0]
        best = np.take_along_axis(values, position[np.newaxis], axis=0)[0]
        labels = np.asarray(data[dim].values)[position]
        all_nan = np.isnan(values).all(axis=0)
        if all_nan.any():
            numeric = labels.dtype.kind in "iufb"
            labels = labels.astype(float if numeric else object)
            labels[all_nan] = np.nan if numeric else None

        template = data.isel({dim: 0}, drop=True)
        return (
            xr.DataArray(labels, dims=template.dims, coords=template.coords, name=dim),
            template.copy(data=best),
        )

    def best(
        self, criterion: str, dataset: Dataset | str | None = None
    ) -> tuple[int, PostProcessorParameters, float] | None:
        """The best iteration and parameter set for ``criterion``.

        Parameters
        ----------
        criterion
            One of :attr:`criteria`.
        dataset
            A validation dataset (or its name). ``None`` scores each iteration and
            parameter set by its mean over the datasets (NaN-skipping).

        Returns
        -------
        (iteration, parameters, value), or None when there is no non-NaN score yet.
        """
        if criterion not in self.criteria:
            raise ValueError(
                f"Unknown criterion '{criterion}'; this evaluator scores {self.criteria}."
            )
        data = self.to_xarray().sel(criteria=[criterion])
        if dataset is None:
            data = data.mean("datasets", skipna=True)
        elif dataset_name(dataset) in self.dataset_names:
            data = data.sel(datasets=dataset_name(dataset))
        else:
            raise ValueError(
                f"Unknown validation dataset '{dataset_name(dataset)}'; this run validates "
                f"on {self.dataset_names}. Pass one of those or None."
            )
        if data.sizes["iterations"] == 0 or data.sizes["parameters"] == 0:
            return None
        best_parameters, per_iteration = self.get_best(data, "parameters")
        best_iteration, value = self.get_best(per_iteration, "iterations")
        iteration, value = best_iteration.item(), float(value.item())
        if np.isnan(value):
            return None
        parameters = best_parameters.sel(iterations=iteration, criteria=criterion).item()
        return int(iteration), parameters, value
