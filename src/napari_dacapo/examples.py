"""The bundled synthetic example: blobs in noise, with instance labels, in 2D and 3D.

Generated (seeded) instead of shipped, so the package stays small and a new user can train
within a minute of installing. Used by ``napari-dacapo example``, ``make run``, the sample
data of the plugin, the tests and the benchmarks.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def synthetic_blobs(
    shape: tuple[int, ...], seed: int = 0, radius: float = 6.0, density: float = 0.6
) -> tuple[np.ndarray, np.ndarray]:
    """Raw ``uint8`` image of touching round objects in noise, and their ``uint32`` labels.

    Objects are the watershed basins of random seeds cut to a radius, so neighbours touch:
    a task must learn to keep them apart.
    """
    rng = np.random.default_rng(seed)
    volume = float(np.prod(shape))
    n = max(2, int(density * volume / ((2 * radius) ** len(shape))))
    centres = tuple(rng.integers(0, s, n) for s in shape)
    markers = np.zeros(shape, np.uint32)
    markers[centres] = np.arange(1, n + 1, dtype=np.uint32)
    distance, (indices) = ndimage.distance_transform_edt(markers == 0, return_indices=True)
    labels = markers[tuple(indices)]
    labels[distance > radius] = 0
    # Raw: bright objects with darker rims (membrane-like contrast), blur and noise.
    edges = ndimage.morphological_gradient(labels.astype(np.int64), size=3) > 0
    raw = np.where(labels > 0, 170.0, 60.0)
    raw[edges] = 80.0
    raw = ndimage.gaussian_filter(raw, 1.0) + rng.normal(0, 18, shape)
    return np.clip(raw, 0, 255).astype(np.uint8), labels


def example_run_config(
    dims: int = 2,
    name: str | None = None,
    iterations: int = 200,
    validation_interval: int = 100,
    snapshot_interval: int | None = 50,
    input_shape: tuple[int, ...] | None = None,
    num_fmaps: int = 8,
    levels: int = 2,
    seed: int = 0,
    eval_shape_increase: tuple[int, ...] | None = None,
):
    """A complete RunConfig on the synthetic blobs: a foreground distance task (instance
    aware, so touching blobs stay apart) and a small UNet, which validates and predicts
    with tiles larger than its training input by ``eval_shape_increase`` (default:
    64 voxels per axis in 2D and 32 in 3D, as the panel's "small" presets)."""
    from napari_dacapo.experiments import (
        CNNectomeUNetConfig,
        DefaultTrainerConfig,
        DistanceTaskConfig,
        NumpyArrayConfig,
        RawGTDatasetConfig,
        RunConfig,
        SimpleAugmentConfig,
        TrainValidateDataSplitConfig,
    )

    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}.")
    train_shape, val_shape = ((256, 256), (128, 128)) if dims == 2 else ((96,) * 3, (64,) * 3)
    input_shape = input_shape or ((92, 92) if dims == 2 else (60, 60, 60))

    def dataset(label: str, shape: tuple[int, ...], s: int) -> RawGTDatasetConfig:
        raw, labels = synthetic_blobs(shape, seed=s)
        return RawGTDatasetConfig(
            name=f"blobs_{dims}d_{label}",
            raw_config=NumpyArrayConfig(name=f"blobs_{dims}d_{label}_raw", data=raw),
            gt_config=NumpyArrayConfig(name=f"blobs_{dims}d_{label}_labels", data=labels),
        )

    return RunConfig(
        name=name or f"example_{dims}d",
        task_config=DistanceTaskConfig(
            name="foreground_distance", channels=["blob"], clip_distance=8.0,
            tol_distance=2.0, scale_factor=4.0,
        ),
        architecture_config=CNNectomeUNetConfig(
            name=f"unet_{dims}d", input_shape=input_shape, fmaps_in=1, fmaps_out=num_fmaps,
            num_fmaps=num_fmaps, fmap_inc_factor=2,
            downsample_factors=[(2,) * dims] * levels,
            # Larger tiles for validation and prediction, as the panel's "small" presets:
            # less context recomputed per predicted voxel, fewer tiles to handle.
            eval_shape_increase=eval_shape_increase or ((64, 64) if dims == 2 else (32,) * 3),
        ),
        trainer_config=DefaultTrainerConfig(
            name="default", batch_size=2, learning_rate=1e-3,
            augments=[SimpleAugmentConfig(name="mirror_transpose")],
            snapshot_interval=snapshot_interval, seed=seed,
        ),
        datasplit_config=TrainValidateDataSplitConfig(
            name=f"blobs_{dims}d",
            train_configs=[dataset("train", train_shape, seed)],
            validate_configs=[dataset("validate", val_shape, seed + 1)],
        ),
        num_iterations=iterations,
        validation_interval=validation_interval,
    )
