"""The npe2 manifest: valid, shipped in the package, and every command importable."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from npe2 import PluginManager, PluginManifest

import napari_dacapo

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def manifest() -> PluginManifest:
    return PluginManifest.from_file(ROOT / "napari.yaml")


def test_manifest_validates_and_is_the_packaged_one(manifest):
    packaged = Path(napari_dacapo.__file__).parent / "napari.yaml"
    assert packaged.resolve() == (ROOT / "napari.yaml").resolve()
    # What napari finds through the entry point is the same manifest.
    installed = PluginManifest._from_package_or_name("napari-dacapo")
    assert installed.name == manifest.name == "napari-dacapo"
    assert installed.contributions == manifest.contributions
    manifest.validate_imports()


def test_every_command_imports_a_callable(manifest):
    commands = manifest.contributions.commands
    assert all(c.id.startswith("napari-dacapo.") for c in commands)
    for command in commands:
        module, _, attribute = command.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attribute)), command.id


def test_contributions_are_wired(manifest):
    contributions = manifest.contributions
    commands = {c.id for c in contributions.commands}
    widgets = {w.display_name: w.command for w in contributions.widgets}
    assert set(widgets) == {"DaCapo training", "DaCapo predict", "DaCapo runs"}
    assert {s.key for s in contributions.sample_data} == {"blobs_2d", "blobs_3d"}
    used = {*widgets.values(), *(s.command for s in contributions.sample_data),
            *(r.command for r in contributions.readers),
            *(w.command for w in contributions.writers)}
    assert used == commands  # no command is declared without a use, none used undeclared
    pm = PluginManager()
    pm.register(manifest)
    assert [r.command for r in pm.iter_compatible_readers([str(ROOT)])] == [
        "napari-dacapo.get_reader"
    ]
    assert [w.command for w in pm.iter_compatible_writers(["image", "labels", "labels"])] == [
        "napari-dacapo.write_layers"
    ]
