"""The training panel's network fitted to a picked image: presets by number of axes,
channels, and anisotropic voxels (downsampling and input shape)."""

from __future__ import annotations

import numpy as np
import pytest
from funlib.geometry import Coordinate

from napari_dacapo.gui.presets import (
    PRESETS,
    anisotropic_factors,
    anisotropic_kernels,
    fit_to_voxels,
)
from napari_dacapo.gui.settings_panel import SettingsPanel, channels_last, image_note
from napari_dacapo.store.file_store import FileStore

pytestmark = pytest.mark.gui


@pytest.mark.parametrize(
    ("voxel_size", "levels", "factors"),
    [
        ((4, 1, 1), 2, [(1, 2, 2), (1, 2, 2)]),
        ((2, 1, 1), 2, [(1, 2, 2), (2, 2, 2)]),
        ((8, 1, 1), 3, [(1, 2, 2), (1, 2, 2), (1, 2, 2)]),
        ((4, 1, 1), 3, [(1, 2, 2), (1, 2, 2), (2, 2, 2)]),
        ((0.4, 0.1, 0.1), 2, [(1, 2, 2), (1, 2, 2)]),
        ((1, 1, 1), 2, [(2, 2, 2), (2, 2, 2)]),
        ((1.5, 1, 1), 2, [(2, 2, 2), (2, 2, 2)]),
        ((1, 4), 2, [(2, 1), (2, 1)]),
    ],
)
def test_anisotropic_factors_wait_for_the_fine_axes(voxel_size, levels, factors):
    assert anisotropic_factors(voxel_size, levels) == [Coordinate(f) for f in factors]


def test_fit_to_voxels_sizes_the_network_for_the_data():
    preset = PRESETS["3D small"].architecture()
    fitted = fit_to_voxels(preset, (4, 1, 1), limit=(24, 128, 128))
    assert fitted.downsample_factors == [(1, 2, 2), (1, 2, 2)]
    # z is convolved only at the bottom, where its voxels are as large as x and y's.
    flat, full = [(1, 3, 3)] * 2, [(3, 3, 3)] * 2
    assert fitted.kernel_size_down == [flat, flat, full]
    assert fitted.kernel_size_up == [flat, flat]
    # xy keep the preset's 60; z gives an output of about the same world extent
    # (5 slices of 4 for 20 pixels of 1).
    assert fitted.input_shape == (9, 60, 60)
    assert fitted.geometry().output_shape(fitted.input_shape) == (5, 20, 20)
    assert fitted.eval_shape_increase == (8, 32, 32)  # scaled alike
    assert fit_to_voxels(preset, (4, 1, 1)) == fitted
    # A thin stack (8 slices) fits both levels; 4 slices get one.
    thin = fit_to_voxels(preset, (4, 1, 1), limit=(8, 128, 128))
    assert thin.downsample_factors == [(1, 2, 2), (1, 2, 2)] and thin.input_shape == (8, 60, 60)
    thinner = fit_to_voxels(preset, (4, 1, 1), limit=(4, 128, 128))
    assert thinner.downsample_factors == [(1, 2, 2)] and thinner.input_shape[0] <= 4
    assert thinner.kernel_size_down == [flat, flat]
    # Kernel sizes the user set are theirs.
    own = preset.replace(kernel_size_down=[full] * 3, kernel_size_up=[full] * 2)
    assert fit_to_voxels(own, (4, 1, 1), limit=(24, 128, 128)).kernel_size_down == [full] * 3
    assert fit_to_voxels(preset, (1, 1, 1), limit=(24, 128, 128)) == preset
    assert fit_to_voxels(preset, (1.5, 1, 1)) == preset


@pytest.mark.parametrize(
    ("voxel_size", "factors", "first_kernels"),
    [
        ((4, 1, 1), [(1, 2, 2), (1, 2, 2)], [(1, 3, 3), (1, 3, 3), (3, 3, 3)]),
        ((2, 1, 1), [(1, 2, 2), (2, 2, 2)], [(1, 3, 3), (3, 3, 3), (3, 3, 3)]),
        ((8, 1, 1), [(1, 2, 2), (1, 2, 2)], [(1, 3, 3)] * 3),  # never reached
        ((1, 4), [(2, 1), (2, 1)], [(3, 1), (3, 1), (3, 3)]),
    ],
)
def test_anisotropic_kernels_are_flat_along_coarse_axes(voxel_size, factors, first_kernels):
    down, up = anisotropic_kernels(voxel_size, factors)
    assert [level[0] for level in down] == [Coordinate(k) for k in first_kernels]
    assert all(len(level) == 2 and level[0] == level[1] for level in down)
    assert up == down[:-1]


def test_picking_an_anisotropic_stack_fits_the_network(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    panel = SettingsPanel(FileStore(tmp_path / "runs"))
    stack = viewer.add_image(np.zeros((24, 128, 128), np.uint8), scale=(4, 1, 1))
    panel.match_image(stack)
    network = panel.settings()["architecture_config"]
    assert panel.presets.currentText() == "3D small"
    assert network.downsample_factors == [(1, 2, 2), (1, 2, 2)]
    assert network.input_shape == (9, 60, 60)
    # An isotropic volume picked next gets the preset back (the network was the panel's).
    panel.match_image(viewer.add_image(np.zeros((64, 64, 64), np.uint8)))
    assert panel.settings()["architecture_config"] == PRESETS["3D small"].architecture()
    panel.match_image(stack)
    assert panel.settings()["architecture_config"].input_shape == (9, 60, 60)
    # A preset chosen by the user is fitted as the first automatic fit was: flat kernels
    # until z's voxel size is reached, not the isotropic preset.
    fitted = panel.settings()["architecture_config"]
    assert fitted.kernel_size_down[0] == [(1, 3, 3)] * 2
    panel.presets.setCurrentText("3D large")
    assert panel.settings()["architecture_config"].downsample_factors[0] == (1, 2, 2)
    panel.presets.setCurrentText("3D small")
    assert panel.settings()["architecture_config"] == fitted
    # A network the user changed is theirs: picking another image keeps it.
    panel.architecture_form.set_value({"input_shape": (44, 44, 44)})
    panel.match_image(stack)
    assert panel.settings()["architecture_config"].input_shape == (44, 44, 44)


def test_picking_the_preset_shown_again_fits_an_edited_network(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    panel = SettingsPanel(FileStore(tmp_path / "runs"))
    panel.match_image(viewer.add_image(np.zeros((24, 128, 128), np.uint8), scale=(4, 1, 1)))
    fitted = panel.settings()["architecture_config"]
    panel.architecture_form.set_value(PRESETS["3D small"].architecture())  # edited
    assert panel.presets.currentText() == "3D small"
    panel.presets.textActivated.emit("3D small")  # picked again: no currentTextChanged
    assert panel.settings()["architecture_config"] == fitted
    assert panel.preset_network("3D small") == fitted
    panel.match_image(None)  # no image picked: presets are as they are
    assert panel.preset_network("3D small") == PRESETS["3D small"].architecture()


def test_loaded_settings_are_not_fitted_to_the_image(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    panel = SettingsPanel(FileStore(tmp_path / "runs"))
    panel.apply_preset("3D small")
    path = tmp_path / "s.yaml"
    assert panel.save(str(path)) and panel.load(str(path))
    panel.match_image(viewer.add_image(np.zeros((24, 128, 128), np.uint8), scale=(4, 1, 1)))
    assert panel.settings()["architecture_config"] == PRESETS["3D small"].architecture()


def test_a_short_first_axis_is_channels_only_as_the_writer_saves_it(make_napari_viewer,
                                                                    tmp_path):
    """The panel reads channels as the plugin's writer saves them (leading_channels): a
    (6, Y, X) image is 6 channels of a 2D image, unless its first axis has a z spacing or
    our reader named it z: then it is a thin volume, for a 3D network."""
    viewer = make_napari_viewer()
    panel = SettingsPanel(FileStore(tmp_path / "runs"))
    panel.match_image(viewer.add_image(np.zeros((6, 64, 64), np.uint8)))
    network = panel.settings()["architecture_config"]
    assert len(network.input_shape) == 2 and network.fmaps_in == 6
    panel.match_image(viewer.add_image(np.zeros((6, 64, 64), np.uint8), scale=(4, 1, 1)))
    network = panel.settings()["architecture_config"]
    assert panel.presets.currentText() == "3D small" and network.fmaps_in == 1
    panel.apply_preset("2D small")
    named = viewer.add_image(np.zeros((6, 64, 64), np.uint8),
                             metadata={"axis_names": ["z", "y", "x"]})
    panel.match_image(named)
    assert len(panel.settings()["architecture_config"].input_shape) == 3


def test_channels_last_image_keeps_the_2d_network(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    panel = SettingsPanel(FileStore(tmp_path / "runs"))
    layer = viewer.add_image(np.zeros((64, 64, 2), np.uint8), name="two")
    assert channels_last(layer)
    panel.match_image(layer)
    network = panel.settings()["architecture_config"]
    assert panel.presets.currentText() == "2D small" and len(network.input_shape) == 2
    assert network.fmaps_in == 2
    assert "first axis" in image_note(layer, 2)
    assert not channels_last(viewer.add_image(np.zeros((64, 64, 3), np.uint8), rgb=True))
    assert not channels_last(viewer.add_image(np.zeros((2, 64, 64), np.uint8)))


def test_first_axis_read_as_channels_is_said(make_napari_viewer):
    viewer = make_napari_viewer()
    movie = viewer.add_image(np.zeros((5, 64, 64), np.uint8), name="movie")
    note = image_note(movie, 2)
    assert "read as 5 channels" in note and "split it into 2D frames" in note
    # A 3D network reads it as a volume of 5 z-slices, which a movie is not.
    assert "read as a 3D volume of 5 z-slices" in image_note(movie, 3)
    movie.scale = (4, 1, 1)  # a z spacing: a volume, nothing to say
    assert image_note(movie, 3) == ""
    assert image_note(viewer.add_image(np.zeros((64, 64), np.uint8)), 2) == ""
