"""Docs that are generated from code stay current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_is_current():
    spec = importlib.util.spec_from_file_location("make_config_docs", ROOT / "scripts" / "make_config_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (ROOT / "docs" / "configuration.md").read_text()
    assert current == module.render(), (
        "docs/configuration.md is out of date: run `.venv/bin/python scripts/make_config_docs.py`"
    )
