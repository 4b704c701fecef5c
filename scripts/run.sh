#!/usr/bin/env bash
# `make run`: train the bundled synthetic example headless through the CLI and say where
# the run was stored.
set -euo pipefail
.venv/bin/napari-dacapo example --dims 2 --iterations 200
echo "List stored runs with: .venv/bin/napari-dacapo runs"
