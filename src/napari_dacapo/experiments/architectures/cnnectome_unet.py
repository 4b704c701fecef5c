"""The CNNectome UNet (DaCapo's default architecture), for 2D and 3D data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from funlib.geometry import Coordinate
from torch import nn

from .architecture import Architecture
from .unet_geometry import UNetGeometry

if TYPE_CHECKING:
    from .cnnectome_unet_config import CNNectomeUNetConfig

__all__ = ["AttentionGate", "CNNectomeUNet", "ConvPass", "Upsample"]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_CONV_TRANSPOSE = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_BATCH_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_MAX_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}


def _conv(
    in_channels: int,
    out_channels: int,
    kernel_size: Sequence[int],
    padding: str = "valid",
    batch_norm: bool = False,
) -> list[nn.Module]:
    """A 2D or 3D convolution (by the kernel's length), then batch norm if asked (which
    makes the convolution's bias redundant)."""
    dims = len(kernel_size)
    pad = tuple(k // 2 for k in kernel_size) if padding == "same" else 0
    conv = _CONV[dims](
        in_channels, out_channels, tuple(kernel_size), padding=pad, bias=not batch_norm
    )
    return [conv, _BATCH_NORM[dims](out_channels)] if batch_norm else [conv]


class ConvPass(nn.Sequential):
    """Convolutions of the given kernel sizes, each followed by (batch norm and) ReLU.

    Parameters
    ----------
    in_channels, out_channels : int
        Feature maps before and after the pass.
    kernel_sizes : sequence of Coordinate
        One per-axis kernel size per convolution; their length sets 2D or 3D.
    padding : {"valid", "same"}
        ``same`` pads by ``k // 2`` (kernels are odd, which the config checks).
    batch_norm : bool
        Insert batch normalisation between each convolution and its ReLU.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[Coordinate],
        padding: str,
        batch_norm: bool,
    ) -> None:
        layers: list[nn.Module] = []
        for kernel_size in kernel_sizes:
            layers += _conv(in_channels, out_channels, kernel_size, padding, batch_norm)
            layers.append(nn.ReLU(inplace=True))
            in_channels = out_channels
        super().__init__(*layers)


class Upsample(nn.Sequential):
    """Upsampling by ``factor`` followed by ReLU.

    Constant (nearest-neighbour) upsampling is followed by a 1x1 convolution that sets the
    number of feature maps, as in CNNectome; otherwise a transposed convolution with kernel
    and stride ``factor`` does both.

    Parameters
    ----------
    factor : Coordinate
        Per-axis upsampling factor.
    in_channels, out_channels : int
        Feature maps before and after.
    constant : bool
        Nearest-neighbour upsampling (True) or a transposed convolution (False).
    """

    def __init__(
        self, factor: Coordinate, in_channels: int, out_channels: int, constant: bool
    ) -> None:
        dims, factors = len(factor), tuple(int(f) for f in factor)
        if constant:
            layers = [
                nn.Upsample(scale_factor=tuple(float(f) for f in factors), mode="nearest"),
                *_conv(in_channels, out_channels, (1,) * dims),
            ]
        else:
            layers = [_CONV_TRANSPOSE[dims](in_channels, out_channels, factors, stride=factors)]
        super().__init__(*layers, nn.ReLU(inplace=True))


class AttentionGate(nn.Module):
    """Additive attention gate on a skip connection (Oktay et al., 2018, "Attention
    U-Net").

    The gate is computed at the skip's resolution from the upsampled decoder features, which
    the network has already cropped to the skip's shape, so no extra resampling or padding
    is needed: ``skip * sigmoid(psi(relu(W_g(gate) + W_x(skip))))``.

    Parameters
    ----------
    gate_channels, skip_channels : int
        Feature maps of the upsampled decoder features and of the skip connection.
    dims : int
        Number of spatial axes.
    batch_norm : bool
        Batch-normalise the three 1x1 convolutions.
    """

    def __init__(self, gate_channels: int, skip_channels: int, dims: int, batch_norm: bool) -> None:
        super().__init__()
        one = (1,) * dims
        self.w_gate = nn.Sequential(*_conv(gate_channels, skip_channels, one, "valid", batch_norm))
        self.w_skip = nn.Sequential(*_conv(skip_channels, skip_channels, one, "valid", batch_norm))
        self.psi = nn.Sequential(*_conv(skip_channels, 1, one, "valid", batch_norm), nn.Sigmoid())

    def forward(self, gate: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        attention = self.psi(torch.relu(self.w_gate(gate) + self.w_skip(skip)))
        return skip * attention


def _center_crop(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Center-crop the trailing spatial axes of ``x`` to ``shape`` (a view: no copy, and
    the memory format of ``x`` is kept)."""
    spatial = x.shape[-len(shape) :]
    if tuple(spatial) == tuple(shape):
        return x
    slices = tuple(slice((s - t) // 2, (s - t) // 2 + t) for s, t in zip(spatial, shape))
    return x[(..., *slices)]


class CNNectomeUNet(Architecture):
    """The UNet of CNNectome as configured by DaCapo's ``CNNectomeUNetConfig``.

    Each of the ``len(downsample_factors) + 1`` levels has a convolution pass on the way
    down (``num_fmaps * fmap_inc_factor**level`` feature maps) and, above the bottom, one on
    the way up after upsampling and concatenating the (cropped) skip connection. As in
    DaCapo, the top upsampling keeps ``num_fmaps * fmap_inc_factor`` maps and the lower ones
    contract to their level's width; the top up pass ends in ``fmaps_out`` maps followed by
    ReLU (the task's prediction head comes after).

    In ``valid`` padding the decoder crops each upsampled map as CNNectome's
    ``crop_to_factor`` does, which makes the output shape a multiple of the product of the
    downsample factors: tiles stepped by the output shape then join seamlessly into the
    prediction of one large input. The arithmetic lives in
    :class:`~.unet_geometry.UNetGeometry`, which :meth:`output_shape_for` uses so that no
    dummy forward pass is needed.

    **Super-resolution.** Each of ``upsample_factors`` adds, after the UNet, an upsampling
    and a convolution pass (kernels of the top level's last pass). The output then has a
    finer voxel size than the input: :meth:`scale` returns
    ``voxel_size / prod(upsample_factors)``, and the output shape is counted in those finer
    voxels.

    The network uses only ops that keep ``torch.channels_last`` /
    ``torch.channels_last_3d`` tensors in that format (crops are views, the skip
    concatenation is along channels) and that run under bf16 autocast.

    Parameters
    ----------
    architecture_config : CNNectomeUNetConfig
        The validated config (see its field help for every setting).
    """

    def __init__(self, architecture_config: CNNectomeUNetConfig) -> None:
        super().__init__()
        cfg = architecture_config
        self._input_shape = Coordinate(cfg.input_shape)
        self._eval_shape_increase = Coordinate(
            cfg.eval_shape_increase
            if cfg.eval_shape_increase is not None
            else (0,) * len(cfg.input_shape)
        )
        self.fmaps_in, self.fmaps_out = cfg.fmaps_in, cfg.fmaps_out
        self.geometry: UNetGeometry = cfg.geometry()
        # Spatial input shapes already checked: the check costs about 0.1 ms of Python,
        # a tenth of a small 2D tile's forward pass, and tiles repeat one shape.
        self._fitting_shapes: set[tuple[int, ...]] = set()
        geo, dims = self.geometry, self.geometry.dims
        width = [cfg.num_fmaps * cfg.fmap_inc_factor**level for level in range(geo.levels)]
        # DaCapo's upsample_channel_contraction = [False, True, True, ...]: the top
        # upsampling keeps the width of the level below, the others contract to their own.
        up_width = [width[level + (level == 0)] for level in range(geo.levels - 1)]
        # The top up pass gives fmaps_out maps; without a decoder the single pass must.
        up_out = [cfg.fmaps_out, *width[1:-1]]
        down_out = width if geo.levels > 1 else [cfg.fmaps_out]
        passes = {"padding": cfg.padding, "batch_norm": cfg.batch_norm}

        self.down_convs = nn.ModuleList(
            ConvPass(n_in, n_out, kernels, **passes)
            for n_in, n_out, kernels in zip([cfg.fmaps_in, *width], down_out, geo.kernel_size_down)
        )
        self.pools = nn.ModuleList(
            _MAX_POOL[dims](tuple(f), stride=tuple(f)) for f in geo.downsample_factors
        )
        self.ups = nn.ModuleList(
            Upsample(f, width[level + 1], up_width[level], cfg.constant_upsample)
            for level, f in enumerate(geo.downsample_factors)
        )
        self.gates = (
            nn.ModuleList(
                AttentionGate(up_width[level], width[level], dims, cfg.batch_norm)
                for level in range(geo.levels - 1)
            )
            if cfg.use_attention
            else None
        )
        self.up_convs = nn.ModuleList(
            ConvPass(skip + up, n_out, kernels, **passes)
            for skip, up, n_out, kernels in zip(width, up_width, up_out, geo.kernel_size_up)
        )
        self.tail = nn.Sequential(
            *(
                nn.Sequential(
                    Upsample(f, cfg.fmaps_out, cfg.fmaps_out, cfg.constant_upsample),
                    ConvPass(cfg.fmaps_out, cfg.fmaps_out, geo.tail_kernel_sizes, **passes),
                )
                for f in geo.upsample_factors
            )
        )

    @property
    def input_shape(self) -> Coordinate:
        """Spatial input shape for training."""
        return self._input_shape

    @property
    def eval_shape_increase(self) -> Coordinate:
        """How much larger the input is when predicting (zeros unless configured)."""
        return self._eval_shape_increase

    @property
    def num_in_channels(self) -> int:
        return self.fmaps_in

    @property
    def num_out_channels(self) -> int:
        return self.fmaps_out

    def scale(self, input_voxel_size: Coordinate) -> Coordinate:
        """Output voxel size: ``input_voxel_size / prod(upsample_factors)``.

        Raises
        ------
        ValueError
            If the voxel size is not divisible by the upsampling (the output voxels would
            not have a whole size).
        """
        voxel_size = Coordinate(input_voxel_size)
        factor = self.geometry.upsample_product
        if any(v % f for v, f in zip(voxel_size, factor)):
            raise ValueError(
                f"voxel size {tuple(voxel_size)} is not divisible by the product of "
                f"upsample_factors {tuple(factor)}; use data whose voxel size is a multiple "
                f"of it, or change upsample_factors."
            )
        return voxel_size / factor

    def output_shape_for(self, input_shape: Coordinate) -> Coordinate:
        """Spatial output shape (in output voxels, see :meth:`scale`) for a spatial input
        shape, without running the network.

        Raises
        ------
        InputShapeError
            A ``ValueError`` naming the nearest valid input shapes.
        """
        return self.geometry.output_shape(input_shape)

    def nearest_valid_input_shapes(
        self, input_shape: Coordinate
    ) -> tuple[Coordinate | None, Coordinate]:
        """Nearest valid input shapes not larger and not smaller than ``input_shape``
        (see :meth:`UNetGeometry.nearest_valid_input_shapes`)."""
        return self.geometry.nearest_valid_input_shapes(input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, fmaps_in, *spatial)`` to ``(batch, fmaps_out, *output_shape)``.

        Raises
        ------
        InputShapeError
            If the spatial shape does not fit (checked up front, with the nearest valid
            shapes in the message, rather than failing deep inside a pooling layer).
        """
        geo = self.geometry
        shape = tuple(x.shape[2:])
        if shape not in self._fitting_shapes:
            geo.output_shape(shape)
            self._fitting_shapes.add(shape)
        skips = []
        for level, pool in enumerate(self.pools):
            skips.append(self.down_convs[level](x))
            x = pool(skips[-1])
        x = self.down_convs[-1](x)
        for level in reversed(range(geo.levels - 1)):
            up = self.ups[level](x)
            target = [geo.decoder_crop(level, axis, s) for axis, s in enumerate(up.shape[2:])]
            up = _center_crop(up, target)
            skip = _center_crop(skips[level], target)
            if self.gates is not None:
                skip = self.gates[level](up, skip)
            x = self.up_convs[level](torch.cat([skip, up], dim=1))
        return self.tail(x)
