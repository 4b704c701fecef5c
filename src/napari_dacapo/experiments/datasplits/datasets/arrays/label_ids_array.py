from __future__ import annotations

import numpy as np

from .array import DerivedArray


class LabelIdsArray(DerivedArray):
    """Labels stored as floats with whole values (e.g. saved by a tool that writes
    float32), read as int64 label ids: what training, validation and the tasks read of a
    dataset's gt (:class:`~..raw_gt_dataset.RawGTDataset` wraps a float gt in it).

    The data checks refuse a gt with other values before training (reading all of an
    in-memory gt, a sample of a lazily read one); a read that finds one the sample missed
    raises, rather than truncating it to a wrong id.

    Parameters
    ----------
    source
        The float labels.
    """

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.int64)

    def transform(self, data: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):  # NaN and infinity: refused just below
            ids = data.astype(np.int64)
        if not np.array_equal(ids, data):  # fractions, NaN, infinity or ids beyond int64
            value = data[ids != data].flat[0]
            raise ValueError(
                f"Labels stored as {data.dtype} hold the non-integer value {value} (the "
                f"checks before training read a sample of them); labels must be integer "
                f"ids (0 = background). Fix: if it is a probability or distance map, "
                f"threshold it (e.g. gt > 0.5) and store the labels as integers (uint8 to "
                f"uint64)."
            )
        return ids
