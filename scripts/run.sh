#!/usr/bin/env bash
# `make run`: napari with the DaCapo training panel and the 2D sample on a desktop; on a
# machine without a display, the same job headless: train the sample through the CLI.
set -euo pipefail
if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ] || [ "$(uname)" = "Darwin" ]; then
  exec .venv/bin/python scripts/launch_napari.py
fi
echo "No display found: training the 2D sample headless through the CLI instead."
.venv/bin/napari-dacapo example --dims 2 --iterations 200
cat <<'MSG'

To look at the result in napari on a machine with a display:
  .venv/bin/napari-dacapo runs                       # where the run is stored
  .venv/bin/napari --plugin napari-dacapo <run folder printed above>   # snapshots, validation
or open napari, Plugins > DaCapo runs, and pick example_2d.
MSG
