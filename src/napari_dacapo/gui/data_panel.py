"""The data part of the training panel: layer pickers that follow the viewer's layers,
and the datasplit made from the picked layers (no data copied).

Array names are fixed by role (``train_raw``, ``train_labels`` ...), not by layer name, so
a stored run matches the panel again after layers are renamed, and pressing Continue
stores the labels painted since under the same names (the store replaces the data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi
from magicgui.widgets import ComboBox, Container, Label
from napari.layers import Image, Labels, Layer, Shapes
from psygnal import Signal

from napari_dacapo.experiments import RawGTDatasetConfig, TrainValidateDataSplitConfig
from napari_dacapo.experiments.datasplits.datasets.checks import DataError, overlap_roi

from .box_mask import ShapeRegion, shape_boxes, shape_regions
from .held_out import region_datasets, region_notes, training_mask
from .layer_arrays import layer_array_config, layer_geometry_values, world_factor
from .layers import is_output

__all__ = ["DataPanel", "DataProblem", "DataSelection", "LAYERS_DATASPLIT", "made_from_layers"]

#: The name of the datasplit the panel makes from layers (the runs it can continue).
LAYERS_DATASPLIT = "layers"


def made_from_layers(config: Any) -> bool:
    """Whether run ``config`` was made by the panel from napari layers: only such a run's
    datasplit can be made again from layers, which continuing it in the panel needs (a run
    made from a config file continues with ``napari-dacapo train --run``)."""
    return getattr(config.datasplit_config, "name", None) == LAYERS_DATASPLIT

#: Labels held in memory up to this size are checked for emptiness before training.
CHECK_BYTES = 512 * 2**20


class DataProblem(ValueError):
    """The picked layers cannot be trained on; the message names the problem and the fix."""


@dataclass(frozen=True)
class DataSelection:
    """What the picked layers give a run (references to layer data, no copies).

    Attributes
    ----------
    dims
        Spatial axes of the run.
    factor
        World values times ``factor`` are the run's integer world units.
    raw_layer
        The training image layer.
    datasplit
        Training dataset (raw, labels, mask) and validation datasets.
    region
        World ROI (integer units) where training raw and labels overlap.
    voxel_size, offset
        Geometry of the training raw, in integer units.
    channels
        Channels of the training raw (1 for a single-channel image).
    notes
        What in the validation regions validates, but likely not as meant (shown under
        the pickers; training is not refused).
    """

    dims: int
    factor: int
    raw_layer: Any
    datasplit: TrainValidateDataSplitConfig
    region: Roi
    voxel_size: Coordinate
    offset: Coordinate
    channels: int
    notes: tuple[str, ...] = ()


class DataPanel:
    """Layer pickers for raw, labels, an optional mask (Labels, or Shapes whose rectangles,
    polygons or ellipses mark the annotated crops) and optional validation data (an image
    with labels, or a Shapes layer whose rectangles mark validation regions of the training
    labels).

    ``changed`` is emitted when a pick changes or a picked layer's data changes.
    """

    changed = Signal()

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self._nonempty: dict[int, bool] = {}
        # Per layer: what its voxels under a validation region are (held_out.region_notes).
        self._region_reads: dict[int, dict[tuple, Any]] = {}
        self._status, self._notes = "", ()

        def picker(label: str, choices: Any, tip: str, nullable: bool = True) -> ComboBox:
            return ComboBox(label=label, choices=choices, nullable=nullable, tooltip=tip)

        self.raw = picker("raw", self._images, "The image to segment (Image layer).")
        self.labels = picker(
            "labels", self._labels_choices,
            "Ground truth: a Labels layer with painted objects (0 = background); image "
            "layers are listed too, for labels opened as images.",
        )
        self.mask = picker(
            "mask", self._mask_choices,
            "Optional: where the labels are complete. A Labels layer (non-zero = annotated) "
            "or a Shapes layer whose rectangles, polygons or ellipses mark the annotated "
            "crops; empty: all labels.",
        )
        self.validation_raw = picker("validation raw", self._images,
                                     "Optional: an image to validate on (with its labels).")
        self.validation_labels = picker("validation labels", self._labels_choices,
                                        "Ground truth of the validation image.")
        self.validation_region = picker(
            "validation region", self._shapes,
            "Optional: a Shapes layer whose (axis-aligned) rectangles mark regions of the "
            "training labels held out for validation (they are not trained on).",
        )
        self.pickers = [self.raw, self.labels, self.mask, self.validation_raw,
                        self.validation_labels, self.validation_region]
        # What the run makes of the data (intensity scaling, classes without labels).
        self.status_line = Label(label="", visible=False)
        self.status_line.native.setWordWrap(True)
        self.widget = Container(widgets=[*self.pickers, self.status_line])
        for picker_ in self.pickers:
            picker_.changed.connect(self._on_pick_changed)
        events = viewer.layers.events
        events.inserted.connect(self._on_layers_changed)
        events.removed.connect(self._on_layers_changed)
        events.moved.connect(self._on_layers_changed)
        for layer in viewer.layers:
            self._watch(layer)
        self.reset_choices()

    # -- choices ---------------------------------------------------------------------------

    def _layers(self, *types: type[Layer]) -> list[tuple[str, Layer]]:
        # The plugin's output layers are written into as runs go on: never training data
        # (to train on a prediction, duplicate its layer and correct the copy).
        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, types) and not is_output(layer)]

    def _images(self, _: Any = None) -> list[tuple[str, Layer]]:
        return self._layers(Image)

    def _shapes(self, _: Any = None) -> list[tuple[str, Layer]]:
        return self._layers(Shapes)

    def _labels_choices(self, _: Any = None) -> list[tuple[str, Layer]]:
        images = [(f"{n} (image)", layer) for n, layer in self._layers(Image) if not layer.rgb]
        return self._layers(Labels) + images

    def _mask_choices(self, _: Any = None) -> list[tuple[str, Layer]]:
        return self._layers(Labels) + self._layers(Shapes)

    def reset_choices(self, *_: Any, pick: bool = True) -> None:
        """Re-read the layer lists; with ``pick``, pick the first image and the first
        Labels layer for raw and labels when none are picked."""
        with self.widget.changed.blocked():
            self.widget.reset_choices()
            if not pick:
                return
            firsts = ((self.raw, self._images()), (self.labels, self._layers(Labels)))
            for picker, choices in firsts:
                if picker.value is None and choices:
                    picker.value = choices[0][1]

    def _on_layers_changed(self, event: Any = None) -> None:
        # A picked layer that goes away leaves its picker empty (Train says what to pick),
        # rather than another layer taking its place unnoticed.
        removed = event is not None and event.type == "removed"
        if event is not None and event.type == "inserted":
            self._watch(event.value)
        elif removed:
            self._unwatch(event.value)
        self.reset_choices(pick=not removed)
        self.changed.emit()

    def _on_pick_changed(self, *_: Any) -> None:
        self.changed.emit()

    def _watch(self, layer: Layer) -> None:
        layer.events.name.connect(self._on_layers_changed)
        layer.events.data.connect(self._on_layer_data)
        if isinstance(layer, Labels):
            layer.events.paint.connect(self._on_layer_data)

    def _unwatch(self, layer: Layer) -> None:
        layer.events.name.disconnect(self._on_layers_changed)
        layer.events.data.disconnect(self._on_layer_data)
        if isinstance(layer, Labels):
            layer.events.paint.disconnect(self._on_layer_data)
        self._nonempty.pop(id(layer), None)
        self._region_reads.pop(id(layer), None)

    def _on_layer_data(self, event: Any) -> None:
        self._nonempty.pop(id(event.source), None)
        self._region_reads.pop(id(event.source), None)
        self.changed.emit()

    def show_status(self, text: str) -> None:
        """Show ``text`` under the pickers, followed by the notes of the last
        :meth:`selection` (hidden when both are empty)."""
        self._status = text
        self._show_notes(self._notes)

    def _show_notes(self, notes: tuple[str, ...]) -> None:
        self._notes = notes
        text = "\n".join(filter(None, [self._status, *notes]))
        self.status_line.value = text
        self.status_line.visible = bool(text)

    def close(self, *_: Any) -> None:
        """Stop following the viewer."""
        events = self.viewer.layers.events
        for emitter in (events.inserted, events.removed, events.moved):
            emitter.disconnect(self._on_layers_changed)
        for layer in self.viewer.layers:
            self._unwatch(layer)

    # -- the datasplit ---------------------------------------------------------------------

    def selection(self, dims: int) -> DataSelection:
        """The datasplit of the picked layers for a ``dims``-D run; its notes are shown
        under the pickers.

        A validation region is a crop of the training raw and labels with, when a mask is
        picked, the mask's crop (voxels outside the mask are not scored); the training
        mask leaves the regions out.

        Raises
        ------
        DataProblem
            Naming what is wrong with the picks and how to fix it.
        """
        self._show_notes(())
        selection = self._select(dims)
        self._show_notes(selection.notes)
        return selection

    def _select(self, dims: int) -> DataSelection:
        raw, labels, mask = self.raw.value, self.labels.value, self.mask.value
        v_raw, v_labels, region = (self.validation_raw.value, self.validation_labels.value,
                                   self.validation_region.value)
        if raw is None:
            raise DataProblem("Pick a raw image: open or add an Image layer with the data.")
        if labels is None:
            raise DataProblem(
                "Pick labels: add a Labels layer over the image and paint a few objects."
            )
        for layer in (labels, v_labels):
            if layer is not None and not np.issubdtype(layer.data.dtype, np.integer):
                raise DataProblem(
                    f"Labels '{layer.name}' hold {layer.data.dtype} values, but labels must be "
                    f"integer ids. Convert the layer (right-click > Convert to Labels) or pick "
                    f"a Labels layer."
                )
        if (v_raw is None) != (v_labels is None):
            raise DataProblem("Pick both a validation raw image and its validation labels, "
                              "or neither.")
        _check_pixel_grid(raw, [labels, mask], dims)
        if v_raw is not None:
            _check_pixel_grid(v_raw, [v_labels], dims)
        grid = [layer for layer in (raw, labels, mask, v_raw, v_labels)
                if layer is not None and not isinstance(layer, Shapes)]
        try:
            factor = world_factor([v for layer in grid for v in layer_geometry_values(layer, dims)])
            raw_cfg = layer_array_config(raw, "train_raw", dims, factor, channels_first=True)
            gt_cfg = layer_array_config(labels, "train_labels", dims, factor)
            held_out = shape_boxes(region, labels, dims) if region is not None else []
            if region is not None and not held_out:
                # Training would go on without validation, silently.
                raise DataProblem(
                    f"Validation region '{region.name}' has no rectangle over the labels. "
                    f"Draw rectangles over labelled parts of the image to hold out for "
                    f"validation, or pick no validation region."
                )
            mask_grid, grid_boxes = None, []
            if isinstance(mask, Labels):
                mask_grid = layer_array_config(mask, "train_mask", dims, factor)
                grid_boxes = shape_boxes(region, mask, dims) if held_out else []
            annotated = self._annotated(mask, labels, dims)
            mask_cfg = training_mask(mask_grid, annotated, held_out, grid_boxes, gt_cfg, dims)
            validate = region_datasets(raw_cfg, gt_cfg, held_out, mask_grid, annotated, dims)
            if v_raw is not None:
                validate.append(RawGTDatasetConfig(
                    name="validate",
                    raw_config=layer_array_config(v_raw, "validate_raw", dims, factor, True),
                    gt_config=layer_array_config(v_labels, "validate_labels", dims, factor),
                ))
        except ValueError as error:  # layer dimensionality or geometry, shapes refused
            raise DataProblem(str(error)) from None
        train = RawGTDatasetConfig(name="train", raw_config=raw_cfg, gt_config=gt_cfg,
                                   mask_config=mask_cfg)
        try:
            overlap = overlap_roi(train.dataset_type(train))
            for dataset in validate:
                overlap_roi(dataset.dataset_type(dataset))
        except DataError as error:
            raise DataProblem(str(error)) from None
        self._check_content(labels, "Labels", "paint a few objects")
        if isinstance(mask, Labels):
            self._check_content(mask, "Mask", "paint where the labels are complete")
        raw_array = raw_cfg.array()
        notes = region_notes(region, held_out, validate, labels, mask, dims, self._read)
        return DataSelection(
            dims, factor, raw,
            TrainValidateDataSplitConfig(name=LAYERS_DATASPLIT, train_configs=[train],
                                         validate_configs=validate),
            overlap, raw_array.voxel_size, raw_array.offset, raw_array.num_channels or 1,
            notes,
        )

    def _annotated(self, mask: Any, labels: Any, dims: int) -> list[ShapeRegion] | None:
        """The voxels of the labels a Shapes mask marks as annotated (None for no mask or
        a Labels mask)."""
        if not isinstance(mask, Shapes):
            return None
        regions = shape_regions(mask, labels, dims)
        if not regions:
            raise DataProblem(
                f"Mask '{mask.name}' has no shape over the labels. Draw rectangles, "
                f"polygons or ellipses around the crops you annotated completely, or "
                f"pick no mask."
            )
        return regions

    def _read(self, layer: Any, key: Any, read: Any) -> Any:
        """``read()``, once per ``key`` until ``layer``'s data change."""
        seen = self._region_reads.setdefault(id(layer), {})
        if key not in seen:
            seen[key] = read()
        return seen[key]

    def _check_content(self, layer: Any, role: str, fix: str) -> None:
        """Refuse labels or a mask that are zero everywhere (in-memory data only; lazy
        data is checked by the worker before training)."""
        data = layer.data
        if not isinstance(data, np.ndarray) or data.nbytes > CHECK_BYTES:
            return
        if id(layer) not in self._nonempty:
            self._nonempty[id(layer)] = bool(data.any())
        if not self._nonempty[id(layer)]:
            raise DataProblem(f"{role} '{layer.name}' are empty (all zero): {fix}.")


def _check_pixel_grid(raw: Any, layers: list[Any], dims: int) -> None:
    """The rules of the datasets' geometry check (``checks._check_geometry``: offsets on
    the voxel grid, labels at the raw's voxel size), said in the layers' own scale and
    translate: the run's integer world units (times the world factor) would name numbers
    the user never typed."""
    # Layers with too few axes are refused by the dimensionality check that follows.
    layers = [layer for layer in layers
              if layer is not None and not isinstance(layer, Shapes) and layer.ndim >= dims]
    if raw.ndim < dims:
        return

    def spatial(layer: Any, key: str) -> np.ndarray:
        return np.asarray(getattr(layer, key)[-dims:], dtype=float)

    def shown(values: np.ndarray) -> tuple[float, ...]:
        return tuple(round(float(v), 6) for v in values)

    image_scale = spatial(raw, "scale")
    for layer in layers:
        scale = spatial(layer, "scale")
        if not np.allclose(scale, image_scale, rtol=1e-9, atol=0):
            raise DataProblem(
                f"'{layer.name}' has scale {shown(scale)} but the image '{raw.name}' has "
                f"{shown(image_scale)}: labels are trained at the image's resolution. Resample "
                f"'{layer.name}' to the image's pixels or, if only its scale is wrong, set it "
                f"to {shown(image_scale)}."
            )
    for layer in (raw, *layers):
        scale, translate = spatial(layer, "scale"), spatial(layer, "translate")
        pixels = translate / scale
        if not np.allclose(pixels, np.round(pixels), rtol=0, atol=1e-6):
            raise DataProblem(
                f"'{layer.name}' has translate {shown(translate)}, which is not a whole number "
                f"of its pixels (scale {shown(scale)}), so its pixels lie off the grid the run "
                f"trains on. Set its translate to a multiple of its scale, e.g. "
                f"{shown(np.round(pixels) * scale)}."
            )
