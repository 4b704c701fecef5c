"""scripts/make_config_docs.py as a command: --help and --check write nothing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def script(tmp_path, monkeypatch):
    """The script's module, writing to tmp_path/configuration.md by default."""
    spec = importlib.util.spec_from_file_location(
        "make_config_docs", ROOT / "scripts" / "make_config_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "OUT", tmp_path / "configuration.md")
    return module


def test_help_shows_the_options_and_writes_nothing(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["make_config_docs.py", "--help"])
    with pytest.raises(SystemExit) as done:
        script.main()
    assert done.value.code == 0
    assert "--check" in capsys.readouterr().out
    assert not script.OUT.exists()


def test_check_compares_without_writing(script, capsys):
    assert script.main(["--check"]) == 1  # no file yet
    assert not script.OUT.exists()
    script.OUT.write_text("stale\n")
    assert script.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert script.OUT.read_text() == "stale\n"

    assert script.main([]) == 0
    assert script.OUT.read_text() == script.render()
    assert script.main(["--check", "--output", str(script.OUT)]) == 0
