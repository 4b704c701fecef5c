"""``python -m napari_dacapo.blockwise JOB [--step STEP] --context CONTEXT``: a worker
started by a ``worker_command`` template."""

from napari_dacapo.blockwise.scheduler import worker_main

worker_main()
