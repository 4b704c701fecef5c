"""Volumes bigger than memory, block by block with daisy workers: prediction
(:func:`predict_blockwise`) and post-processing into a segmentation
(:func:`segment_blockwise`).

Both are blockwise *jobs* that share one machinery (:mod:`.scheduler`): a record of the
job beside its output, done markers so that a rerun does only the missing blocks, local
worker processes or a command template that starts workers elsewhere, retries, an error
naming the blocks still missing, and a stop on Ctrl-C or SIGTERM that ends the workers
first (:mod:`.stopping`).
"""

from .locations import split_zarr_path
from .prediction import BlockLayout, BlockwisePredictionError, predict_blockwise
from .scheduler import BlockwiseError, worker_main
from .segmentation import BlockwiseSegmentationError, segment_blockwise
from .stopping import JobStopped

__all__ = [
    "BlockLayout",
    "BlockwiseError",
    "BlockwisePredictionError",
    "BlockwiseSegmentationError",
    "JobStopped",
    "predict_blockwise",
    "segment_blockwise",
    "split_zarr_path",
    "worker_main",
]
