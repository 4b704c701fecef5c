"""The one-hot task's refusal of labels that are not class indices: it names the labels as
the user knows them (not an internal "gt") and says that 0 is the first class."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from funlib.geometry import Coordinate

from napari_dacapo.experiments.tasks.predictors.one_hot_predictor import (
    ClassIndexError,
    OneHotPredictor,
)

V2 = Coordinate(1, 1)


def _refusal(classes, gt) -> ClassIndexError:
    with pytest.raises(ClassIndexError) as error:
        OneHotPredictor(classes).create_target(np.array(gt), V2)
    return error.value


def test_scribbles_painted_one_and_two_are_explained():
    """Scribbles: 1 painted for background, 2 for foreground, 0 left unpainted."""
    error = _refusal(["background", "foreground"], [[0, 1, 2]])
    assert isinstance(error, ValueError)  # what the checks and the GUI catch
    assert str(error) == (
        "The labels hold the value 2, but the task has 2 classes (background, foreground) "
        "and the labels must be class indices 0..1: 0 is the first class (background), so "
        "voxels left unpainted (0) count as background unless a mask is picked (1 where the "
        "labels are painted). If the classes are painted as 1..2 over unpainted 0, subtract 1 "
        "where painted and pick a mask of the painted voxels; or add the missing classes to "
        "the task config."
    )
    assert "gt" not in str(error).split()


def test_the_labels_are_named_as_the_user_knows_them():
    error = _refusal(["bg", "fg"], [[0, 1, 17]])
    named = error.naming("Labels 'scribbles'")
    assert str(named).startswith("Labels 'scribbles' hold the value 17, but the task has 2 "
                                 "classes (bg, fg)")
    assert "Relabel them as class indices 0..1, or add the missing classes" in str(named)
    assert (named.value, named.classes) == (17, ["bg", "fg"])
    # It survives a worker process (pickled) with its name.
    assert str(pickle.loads(pickle.dumps(named))) == str(named)


def test_negative_labels_are_refused_with_the_fix():
    error = _refusal(["bg", "fg"], [[0, -1]])
    assert str(error).startswith("The labels hold the value -1")
    assert str(error).endswith("Relabel them as class indices 0..1.")
