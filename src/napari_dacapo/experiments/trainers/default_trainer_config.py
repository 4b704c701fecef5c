"""Config of the default trainer (loads DaCapo's ``GunpowderTrainerConfig``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch

from ..configs import option

from .augments.augment_config import AugmentConfig
from .default_trainer import DefaultTrainer
from .trainer import Trainer
from .trainer_config import TrainerConfig

SAMPLE_FROM = ("auto", "mask", "labels", "anywhere")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DefaultTrainerConfig(TrainerConfig):
    """How to train: batches, augments, optimizer, precision and device.

    Samples are centred on annotated voxels, augmented, turned into targets and weights by
    the task, and prepared in a worker process (or a thread) while the model steps.

    Examples
    --------
    >>> DefaultTrainerConfig(name="default", batch_size=2, learning_rate=1e-4)
    """

    trainer_type: ClassVar[type[Trainer]] = DefaultTrainer
    aliases: ClassVar[tuple[str, ...]] = ("GunpowderTrainerConfig",)

    batch_size: int = option(2, help="Samples per training step.", min=1, max=1024)
    learning_rate: float = option(
        1e-4, help="Learning rate of the optimizer (after warm-up).", min=1e-12, max=1.0
    )
    augments: list[AugmentConfig] = option(
        factory=list, help="Augments applied to every sample, in order."
    )
    snapshot_interval: int | None = option(
        None,
        help="Keep (and store) raw, labels, mask, target, weight and prediction of one sample "
        "every this many iterations; empty for no snapshots.",
        min=1,
    )
    min_masked: float = option(
        0.15,
        help="Fraction of the output region that must be annotated for a location to be used "
        "(checked before augmentation; drawn again a bounded number of times, then used "
        "anyway).",
        min=0.0,
        max=1.0,
    )
    clip_raw: bool = option(
        True,
        help="Take samples only where the whole network input lies inside the ground truth's "
        "region; switch off to use raw around small annotated crops as context.",
    )
    sample_from: Literal["auto", "mask", "labels", "anywhere"] = option(
        "auto",
        help="Where sample centres may lie: inside the mask, on non-zero labels, or anywhere; "
        "auto = the mask if the dataset has one, else non-zero labels. Datasets with sample "
        "points are sampled at those.",
        choices=SAMPLE_FROM,
    )
    optimizer: Literal["radam", "adamw"] = option(
        "radam", help="Optimizer: RAdam (DaCapo's) or AdamW.", choices=("radam", "adamw")
    )
    weight_decay: float = option(0.0, help="Weight decay of the optimizer.", min=0.0)
    warmup_iterations: int = option(
        0, help="Raise the learning rate linearly over this many first iterations.", min=0
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = option(
        "auto",
        help="Numeric precision: auto = bf16 autocast where the hardware has native bf16 "
        "(AMX CPUs, recent GPUs), fp32 otherwise; fp16 only on CUDA.",
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    channels_last: Literal["auto", "on", "off"] = option(
        "auto",
        help="Channels-last memory format for model and inputs; auto = with autocast.",
        choices=("auto", "on", "off"),
    )
    device: str | None = option(
        None,
        help="Device to train on ('cpu', 'cuda', 'cuda:1', 'mps'); empty = the best available.",
    )
    prefetch: int = option(
        2,
        help="Batches prepared ahead, in a worker process or a thread (see prefetch_worker); "
        "0 prepares them in the training thread, as prefetch_worker auto does on a CPU "
        "without a spare core.",
        min=0,
        max=64,
    )
    prefetch_worker: Literal["auto", "process", "thread"] = option(
        "auto",
        help="Where batches are prepared ahead: in a worker process, which keeps the "
        "training loop free of Python's GIL (Linux only), or in a thread. auto = a worker "
        "process when it has a CPU core of its own (training on a GPU, or more cores than "
        "torch's threads), else in the training thread (a worker would take a core from the "
        "model step, which costs more on a small CPU); a thread where processes cannot be "
        "forked. The worker is forked, or, for data read lazily (zarr, dask), spawned: it "
        "opens the data again, which takes a few seconds once per training.",
        choices=("auto", "process", "thread"),
    )
    loss_sync_interval: int = option(
        10,
        help="On GPUs, read the loss back every this many iterations (each read waits for the "
        "GPU); on CPUs it is read every iteration.",
        min=1,
    )
    seed: int | None = option(
        None, help="Seed of sampling and augmentation, for reproducible batches.", min=0
    )

    def validate(self) -> None:
        for i, augment in enumerate(self.augments):
            # An untagged augment in YAML loads as the bare base class, which builds nothing.
            if not isinstance(augment, AugmentConfig) or not hasattr(augment, "augment_type"):
                raise self.error(
                    f"augments[{i}]", f"is a {type(augment).__name__}",
                    "Give augment configs such as SimpleAugmentConfig(name=...) (in YAML, tag "
                    "each with '__type__: SimpleAugmentConfig' or another augment type).",
                )
        if self.device is not None and not self.device.strip():
            object.__setattr__(self, "device", None)
        if self.device is not None and self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, ValueError):
                raise self.error(
                    "device", f"'{self.device}' is not a device name",
                    "Use 'cpu', 'cuda', 'cuda:<index>', 'mps' or leave it empty.",
                ) from None
