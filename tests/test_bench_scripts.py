"""The prepared device check (bench/cuda_check.py) keeps working between the sessions that
have a GPU to run it on: its steps run here on the CPU (``--cpu``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "bench"


def test_cuda_check_runs_its_steps_on_the_cpu():
    result = subprocess.run(
        [sys.executable, str(BENCH / "cuda_check.py"), "--cpu", "--dims", "2",
         "--iterations", "25", "--rounds", "1"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "cuda_check=ok"
    assert any(line.startswith("2D training: ") and " it/s " in line for line in lines)
    assert any(line.startswith("2D prediction, 196 tiles") and " ratio " in line
               for line in lines)
