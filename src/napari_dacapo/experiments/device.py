"""Which device to compute on and with which numeric precision.

bf16 autocast with a channels-last memory format is the fast path on hardware that has
native bf16 matrix units: on a 2-core AMX CPU it makes the default 3D example's training
step 2.5x faster than plain fp32 (bench/precision.py); recent GPUs (compute capability 8.0
or newer) have bf16 tensor cores too.
Elsewhere bf16 is emulated and slower, so ``"auto"`` falls back to fp32 there.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

__all__ = [
    "tensor_memory_format",
    "Precision",
    "ChannelsLast",
    "PrecisionPlan",
    "choose_device",
    "choose_precision",
    "describe_device",
    "cpu_has_fast_bf16",
    "has_spare_core",
]

Precision = Literal["auto", "fp32", "bf16", "fp16"]
ChannelsLast = Literal["auto", "on", "off"]

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
CHANNELS_LAST: tuple[str, ...] = ("auto", "on", "off")


def choose_device(preference: str | torch.device | None = None) -> torch.device:
    """The device to train or predict on.

    Parameters
    ----------
    preference
        ``None``, ``""`` or ``"auto"`` pick the best available device: CUDA, then Apple
        MPS, then the CPU. An explicit name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``)
        is honoured, or refused with a ``ValueError`` saying why and what to use instead.
    """
    if preference is None or (isinstance(preference, str) and preference.strip() in ("", "auto")):
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference.strip() if isinstance(preference, str) else preference)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"'{preference}' is not a device name. Use 'cpu', 'cuda', 'cuda:<index>', 'mps' "
            f"or leave it empty to pick the best available device."
        ) from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"Device '{preference}' was asked for but CUDA is not available (torch "
                f"{torch.__version__} sees no NVIDIA GPU). Install a CUDA build of torch that "
                f"matches your driver, or choose device 'cpu'."
            )
        count = torch.cuda.device_count()
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= count:
            raise ValueError(
                f"Device '{preference}' does not exist: this machine has {count} CUDA "
                f"device(s), cuda:0 to cuda:{count - 1}. Choose one of those."
            )
        return torch.device("cuda", index)
    if device.type == "mps":
        if not _mps_available():
            raise ValueError(
                f"Device '{preference}' was asked for but Apple MPS is not available on this "
                f"machine. Choose device 'cpu' (or 'cuda' on a machine with an NVIDIA GPU)."
            )
        return device
    raise ValueError(
        f"Device type '{device.type}' is not supported. Use 'cpu', 'cuda', 'cuda:<index>' or "
        f"'mps'."
    )


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


@dataclass(frozen=True)
class PrecisionPlan:
    """How the model computes on a device.

    Attributes
    ----------
    autocast_dtype
        The dtype of ``torch.autocast`` around the forward pass, or ``None`` for plain fp32.
    channels_last
        Whether the model and its inputs use the channels-last memory format.
    description
        Short human-readable summary, e.g. ``"bf16 autocast, channels-last"``.
    """

    autocast_dtype: torch.dtype | None
    channels_last: bool
    description: str

    @property
    def needs_grad_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range."""
        return self.autocast_dtype is torch.float16

    def memory_format(self, spatial_dims: int) -> torch.memory_format:
        """The memory format for a ``(batch, channel, *spatial)`` tensor with this plan."""
        return tensor_memory_format(spatial_dims, self.channels_last)


def tensor_memory_format(spatial_dims: int, channels_last: bool) -> torch.memory_format:
    """The memory format of a ``(batch, channel, *spatial)`` tensor: channels-last where
    asked and torch has one for that many spatial axes (2 and 3), else contiguous."""
    if not channels_last:
        return torch.contiguous_format
    return {2: torch.channels_last, 3: torch.channels_last_3d}.get(
        spatial_dims, torch.contiguous_format
    )


def choose_precision(
    device: torch.device,
    setting: str = "auto",
    channels_last: str = "auto",
) -> PrecisionPlan:
    """The precision plan for ``device``.

    Parameters
    ----------
    device
        Where the model runs.
    setting
        ``"auto"``: bf16 autocast where the hardware computes bf16 natively (CPUs with AMX
        or AVX512-BF16, CUDA GPUs of compute capability 8.0 or newer), fp32 otherwise.
        ``"fp32"``, ``"bf16"`` force that precision; ``"fp16"`` (autocast with gradient
        scaling) is only offered on CUDA.
    channels_last
        ``"auto"`` uses channels-last exactly when autocast is on (that is where the
        convolution kernels gain from it); ``"on"``/``"off"`` force it.
    """
    if setting not in PRECISIONS:
        raise ValueError(
            f"precision '{setting}' is unknown. Choose one of {', '.join(PRECISIONS)}."
        )
    if channels_last not in CHANNELS_LAST:
        raise ValueError(
            f"channels_last '{channels_last}' is unknown. Choose one of "
            f"{', '.join(CHANNELS_LAST)}."
        )
    if setting == "auto":
        setting = "bf16" if _fast_bf16(device) else "fp32"
    if setting == "fp16" and device.type != "cuda":
        raise ValueError(
            f"fp16 precision needs a CUDA GPU but the device is '{device}'. Use precision "
            f"'bf16' or 'auto' instead."
        )
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[setting]
    use_channels_last = dtype is not None if channels_last == "auto" else channels_last == "on"
    parts = [f"{setting} autocast" if dtype is not None else "fp32"]
    if use_channels_last:
        parts.append("channels-last")
    return PrecisionPlan(dtype, use_channels_last, ", ".join(parts))


def describe_device(device: torch.device, plan: PrecisionPlan) -> str:
    """E.g. ``"cpu (bf16 autocast, channels-last)"`` or ``"cuda:0 NVIDIA H100 (fp32)"``."""
    name = str(device)
    if device.type == "cuda" and torch.cuda.is_available():
        name = f"{name} {torch.cuda.get_device_name(device)}"
    return f"{name} ({plan.description})"


def _fast_bf16(device: torch.device) -> bool:
    if device.type == "cpu":
        return cpu_has_fast_bf16()
    if device.type == "cuda" and torch.cuda.is_available():
        # Pre-Ampere GPUs report bf16 as "supported" through emulation, which is slower than
        # fp32; only compute capability 8.0+ has bf16 tensor cores.
        return torch.cuda.get_device_capability(device) >= (8, 0) and torch.cuda.is_bf16_supported()
    return False


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (Intel AMX or AVX512-BF16)."""
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(torch.cpu, probe, None)  # private torch helpers, absent in old torch
        if check is not None:
            try:
                if check():
                    return True
            except RuntimeError:
                pass
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def device_plan_for(
    trainer_config: object, device: torch.device | str | None = None
) -> tuple[torch.device, PrecisionPlan]:
    """The device and precision plan a trainer config asks for (one place for training,
    validation and prediction). ``device`` overrides the config's own choice."""
    # An override is checked like the config's own choice (a name torch does not know, or
    # a GPU this machine lacks, is a ValueError naming the fix, not torch's own error).
    if device is None:
        device = getattr(trainer_config, "device", None)
    device = choose_device(device)
    plan = choose_precision(
        device,
        getattr(trainer_config, "precision", "auto"),
        getattr(trainer_config, "channels_last", "auto"),
    )
    return device, plan


def has_spare_core(device: torch.device) -> bool:
    """Whether work beside the model step (preparing batches) has a CPU core to itself:
    the step runs on an accelerator, or this process may use more cores than torch's
    intra-op threads. Otherwise that work takes a core from the step's threads, which then
    wait for it at every parallel operation."""
    if device.type != "cpu":
        return True
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return cores > torch.get_num_threads()


def release_device_memory(device: torch.device) -> None:
    """Give cached accelerator memory back to the system (after training ends)."""
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
