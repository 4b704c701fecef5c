"""CNNectome UNet: analytic shapes against real forward passes, shape errors, config
checks, the Model wrapper and the YAML round trip. Networks are tiny (2-4 feature maps)."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from funlib.geometry import Coordinate

from napari_dacapo.experiments.architectures import (
    Architecture,
    ArchitectureConfig,
    CNNectomeUNet,
    CNNectomeUNetConfig,
    InputShapeError,
    UNetGeometry,
)
from napari_dacapo.experiments.configs import ConfigError, from_dict, load_config, save_config
from napari_dacapo.experiments.model import Model

ANISO_DOWN = [[(1, 3, 3), (1, 3, 3)], [(1, 3, 3), (3, 3, 3)], [(3, 3, 3), (3, 3, 3)]]
ANISO_UP = [[(1, 3, 3), (1, 3, 3)], [(3, 3, 3), (1, 3, 3)]]

# (id, config fields besides the common ones). Chosen to cover 2D/3D, valid/same, 1-3
# levels, fmap_inc_factor, anisotropic and uneven kernels, both upsampling modes,
# upsample_factors, attention, batch norm and eval_shape_increase.
CASES = [
    ("2d-valid-2levels", {"downsample_factors": [(2, 2)]}),
    (
        "2d-valid-3levels-transposed-x3",
        {"downsample_factors": [(2, 2), (3, 3)], "fmap_inc_factor": 3, "constant_upsample": False},
    ),
    (
        "2d-valid-4levels-attention",
        {"downsample_factors": [(2, 2), (2, 1), (2, 2)], "use_attention": True},
    ),
    ("2d-valid-1level", {"downsample_factors": []}),
    (
        "2d-valid-kernels-upsample",
        {
            "downsample_factors": [(2, 2), (2, 2)],
            "kernel_size_down": [[(5, 5)], [(3, 3), (3, 3), (3, 3)], [(3, 1), (1, 3)]],
            "kernel_size_up": [[(3, 3)], [(5, 3), (3, 3)]],
            "upsample_factors": [(2, 2), (1, 3)],
        },
    ),
    (
        "2d-same-attention-bn",
        {
            "downsample_factors": [(2, 2), (2, 2)],
            "padding": "same",
            "use_attention": True,
            "batch_norm": True,
            "eval_shape_increase": (2, 3),
        },
    ),
    (
        "2d-same-upsample",
        {
            "downsample_factors": [(3, 2)],
            "padding": "same",
            "upsample_factors": [(2, 1)],
            "constant_upsample": False,
        },
    ),
    (
        "3d-valid-anisotropic",
        {
            "downsample_factors": [(1, 2, 2), (1, 2, 2)],
            "kernel_size_down": ANISO_DOWN,
            "kernel_size_up": ANISO_UP,
            "upsample_factors": [(1, 2, 2)],
            "fmap_inc_factor": 1,
        },
    ),
    (
        "3d-same-transposed",
        {
            "downsample_factors": [(2, 2, 2)],
            "padding": "same",
            "constant_upsample": False,
            "eval_shape_increase": (1, 2, 3),
        },
    ),
    (
        "3d-valid-attention-bn-eval",
        {
            "downsample_factors": [(2, 2, 2)],
            "use_attention": True,
            "batch_norm": True,
            "eval_shape_increase": (1, 0, 2),
        },
    ),
]


def make_config(input_shape=None, **fields) -> CNNectomeUNetConfig:
    """A tiny config. Without ``input_shape``: the smallest valid one plus one step on the
    last axis (so that axes differ), and ``eval_shape_increase`` counts in steps (products
    of the downsample factors), so that it keeps the shape valid."""
    dims = len(fields["downsample_factors"][0]) if fields["downsample_factors"] else 2
    fields = {
        "name": "unet",
        "fmaps_in": 2,
        "fmaps_out": 3,
        "num_fmaps": 2,
        "fmap_inc_factor": 2,
    } | fields
    if input_shape is None:
        geometry = UNetGeometry.create(
            dims,
            fields["downsample_factors"],
            fields.get("kernel_size_down"),
            fields.get("kernel_size_up"),
            fields.get("padding", "valid"),
            fields.get("upsample_factors"),
        )
        step = Coordinate((0,) * (dims - 1) + (geometry.period[-1],))
        input_shape = geometry.smallest_input_shape() + step
        if "eval_shape_increase" in fields:
            fields["eval_shape_increase"] = Coordinate(fields["eval_shape_increase"]) * (
                geometry.period
            )
    return CNNectomeUNetConfig(input_shape=input_shape, **fields)


def forward_shape(net: torch.nn.Module, channels: int, shape) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(net(torch.rand(1, channels, *shape)).shape)


@pytest.mark.parametrize("fields", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_output_shape_for_matches_forward(fields):
    config = make_config(**fields)
    net = config.architecture_type(config).eval()
    assert isinstance(net, CNNectomeUNet) and isinstance(net, Architecture)
    period = config.geometry().period
    for shape in (
        net.input_shape,
        net.input_shape + net.eval_shape_increase,
        net.input_shape + period * 2,
    ):
        expected = net.output_shape_for(Coordinate(shape))
        assert forward_shape(net, 2, shape) == (1, 3, *expected)
    if config.padding == "same":
        ups = config.geometry().upsample_product
        assert net.output_shape_for(net.input_shape) == net.input_shape * ups


TILED_CASES = [
    c for c in CASES if c[1].get("padding", "valid") == "valid" and not c[1].get("upsample_factors")
]


@pytest.mark.parametrize("fields", [c[1] for c in TILED_CASES], ids=[c[0] for c in TILED_CASES])
def test_valid_padding_tiles_join_seamlessly(fields):
    """In valid padding the decoder crops make the output shape a multiple of the total
    downsampling, so tiles stepped by the output shape give exactly the prediction of one
    large input (what blockwise prediction relies on)."""
    config = make_config(**fields)
    torch.manual_seed(0)
    net = CNNectomeUNet(config).eval()
    shape = config.input_shape
    out = net.output_shape_for(shape)
    assert all(o % p == 0 for o, p in zip(out, config.geometry().period))

    def window(x, offset, size):
        return x[(..., *(slice(o, o + s) for o, s in zip(offset, size)))]

    x = torch.rand(1, config.fmaps_in, *(shape + out))
    with torch.no_grad():
        whole = net(x)
        for offset in ((0,) * len(shape), out, out * Coordinate((0,) * (len(out) - 1) + (1,))):
            torch.testing.assert_close(net(window(x, offset, shape)), window(whole, offset, out))


def test_valid_sizes_and_nearest_shapes_match_brute_force():
    """The closed form of the valid sizes (``period * m + offset``) that gives the nearest
    valid shapes agrees with the layer-by-layer check of every size."""
    config = make_config(**CASES[4][1])
    geometry = config.geometry()
    other = config.input_shape[1]
    sizes = range(1, 140)
    valid = [s for s in range(1, 200) if geometry.is_valid((s, other))]
    assert valid and valid[0] == geometry.smallest_input_shape()[0]
    assert all(b - a == geometry.period[0] for a, b in itertools.pairwise(valid))
    for s in sizes:
        below, above = geometry.nearest_valid_input_shapes((s, other))
        below_ok = [v for v in valid if v <= s]
        assert above[0] == min((v for v in valid if v >= s), default=None)
        assert (below[0] if below else None) == (max(below_ok) if below_ok else None)
        assert above[1] == other and (below is None or below[1] == other)


@pytest.mark.parametrize(
    ("fields", "shape"),
    [
        ({"downsample_factors": [(2, 2), (2, 2)]}, (101, 98)),
        ({"downsample_factors": [(2, 2), (2, 2)]}, (30, 48)),  # axis 0 below the minimum
        ({"downsample_factors": [(2, 2), (3, 3)], "padding": "same"}, (24, 20)),
        (
            {
                "downsample_factors": [(1, 2, 2)],
                "kernel_size_down": ANISO_DOWN[:2],
                "kernel_size_up": ANISO_UP[:1],
                "upsample_factors": [(1, 2, 2)],
            },
            (1, 22, 23),
        ),
    ],
    ids=["valid", "too-small", "same", "3d-anisotropic"],
)
def test_invalid_shape_names_nearest_valid_shapes(fields, shape):
    config = make_config(**fields)
    net = CNNectomeUNet(config).eval()
    with pytest.raises(InputShapeError) as info:
        net.output_shape_for(Coordinate(shape))
    error = info.value
    message = str(error)
    assert f"input_shape {shape} does not fit downsample_factors" in message
    assert f"with {config.padding} padding" in message
    assert str(tuple(error.above)) in message
    if error.below is not None:
        assert f"nearest valid shapes: {tuple(error.below)} and {tuple(error.above)}" in message
    else:
        assert "smallest valid shape" in message
    for nearest, side in ((error.below, -1), (error.above, 1)):
        if nearest is None:
            continue
        assert all((n - s) * side >= 0 for n, s in zip(nearest, shape))
        expected = net.output_shape_for(nearest)
        assert forward_shape(net, 2, nearest) == (1, 3, *expected)
    # The network refuses the shape itself rather than pooling it silently.
    with pytest.raises(InputShapeError, match="nearest valid shapes|smallest valid shape"):
        forward_shape(net, 2, shape)


def test_same_padding_needs_multiples_of_the_downsampling():
    geometry = make_config(downsample_factors=[(2, 2), (3, 3)], padding="same").geometry()
    assert geometry.period == (6, 6)
    assert geometry.smallest_input_shape() == (6, 6)
    assert geometry.nearest_valid_input_shapes((25, 36)) == ((24, 36), (30, 36))
    with pytest.raises(InputShapeError, match=r"axis 0: size 5 .* not divisible by 3"):
        geometry.output_shape((10, 12))


def test_output_shape_rejects_wrong_number_of_axes():
    net = CNNectomeUNet(make_config(downsample_factors=[(2, 2)]))
    with pytest.raises(ValueError, match="has 3 axes but the network is 2D"):
        net.output_shape_for(Coordinate(20, 20, 20))


BASE = {"name": "unet", "fmaps_in": 1, "fmaps_out": 2, "num_fmaps": 2, "fmap_inc_factor": 2}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"input_shape": (44, 44), "downsample_factors": [(2, 2, 2)]},
            r"downsample_factors\[0\] is \(2, 2, 2\)\. Give 2 values, one per axis",
        ),
        ({"input_shape": (8, 8, 8, 8), "downsample_factors": []}, "input_shape has 4 axes"),
        ({"input_shape": (0, 44), "downsample_factors": []}, r"input_shape is \(0, 44\)"),
        (
            {"input_shape": (44, 44), "downsample_factors": [(2, 0)]},
            r"downsample_factors\[0\] is \(2, 0\)\. Give whole numbers >= 1",
        ),
        (
            {
                "input_shape": (44, 44),
                "downsample_factors": [(2, 2)],
                "kernel_size_down": [[(3, 3)]],
            },
            "kernel_size_down has 1 entries but the network has 2 levels",
        ),
        (  # the example fits the network: three 3D levels, not two 2D ones
            {
                "input_shape": (44, 44, 44),
                "downsample_factors": [(2, 2, 2), (2, 2, 2)],
                "kernel_size_down": [[(3, 3, 3)]],
            },
            r"e\.g\. \[\[\[3, 3, 3\], \[3, 3, 3\]\], \[\[3, 3, 3\], \[3, 3, 3\]\], "
            r"\[\[3, 3, 3\], \[3, 3, 3\]\]\] for 3 3D levels\.",
        ),
        (
            {
                "input_shape": (44, 44),
                "downsample_factors": [(2, 2)],
                "kernel_size_up": [[(3, 3), (3, 3, 3)]],
            },
            r"kernel_size_up\[0\]\[1\] is",
        ),
        (
            {
                "input_shape": (44, 44),
                "downsample_factors": [(2, 2)],
                "kernel_size_down": [[3, 3], [3, 3]],
            },
            r"kernel_size_down\[0\]\[0\] is 3\. Give a list with one entry per level",
        ),
        (
            {"input_shape": (44, 44), "downsample_factors": [(2, 2)], "kernel_size_up": [[]]},
            r"kernel_size_up\[0\] is \[\]",
        ),
        (
            {
                "input_shape": (16, 16),
                "downsample_factors": [(2, 2)],
                "padding": "same",
                "kernel_size_up": [[(3, 2)]],
            },
            "even size, which 'same' padding cannot centre",
        ),
        (
            {"input_shape": (44, 44), "downsample_factors": [(2, 2)], "padding": "full"},
            "padding is 'full'. Choose one of 'valid', 'same'",
        ),
        (
            {"input_shape": (44, 44), "downsample_factors": [(2, 2)], "upsample_factors": [(0, 2)]},
            r"upsample_factors\[0\] is \(0, 2\)",
        ),
        (
            {
                "input_shape": (44, 44),
                "downsample_factors": [(2, 2)],
                "eval_shape_increase": (-2, 0),
            },
            r"eval_shape_increase is \(-2, 0\)\. .*>= 0",
        ),
        (
            {
                "input_shape": (44, 44),
                "downsample_factors": [(2, 2)],
                "eval_shape_increase": (4, 3),
            },
            (
                r"eval_shape_increase \(4, 3\) makes the prediction input \(48, 47\).*"
                r"Use eval_shape_increase \(4, 2\) or \(4, 4\)"
            ),
        ),
        (
            {"input_shape": (45, 44), "downsample_factors": [(2, 2)]},
            (
                r"input_shape \(45, 44\) does not fit .*nearest valid shapes: \(44, 44\) and "
                r"\(46, 44\)\. Use one of the nearest valid shapes"
            ),
        ),
        (
            {"input_shape": (44, 44), "downsample_factors": [(2, 2)], "num_fmaps": 0},
            "num_fmaps must be >= 1",
        ),
    ],
    ids=[
        "factor-dims",
        "4d",
        "zero-shape",
        "zero-factor",
        "kernel-levels",
        "kernel-example-3d",
        "kernel-dims",
        "kernel-int",
        "kernel-empty",
        "same-even-kernel",
        "padding-choice",
        "upsample-zero",
        "eval-negative",
        "eval-misfit",
        "input-misfit",
        "num-fmaps",
    ],
)
def test_config_validation_names_field_and_fix(fields, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        CNNectomeUNetConfig(**BASE | fields)
    assert str(info.value).startswith("CNNectomeUNetConfig 'unet': ")


def test_model_wraps_unet_with_head_and_eval_activation():
    config = make_config(downsample_factors=[(2, 2)], eval_shape_increase=(2, 2))
    net = CNNectomeUNet(config)
    head = torch.nn.Conv2d(net.num_out_channels, 5, kernel_size=1)
    model = Model(net, head, eval_activation=torch.nn.Sigmoid())
    assert model.num_in_channels == config.fmaps_in == net.num_in_channels
    assert model.input_shape == config.input_shape
    assert model.eval_input_shape == config.input_shape + config.eval_shape_increase
    channels, output_shape = model.compute_output_shape(model.input_shape)
    assert (channels, output_shape) == (5, net.output_shape_for(config.input_shape))
    assert (model.num_out_channels, model.output_shape) == (channels, output_shape)
    assert model.compute_output_shape(model.eval_input_shape)[1] == net.output_shape_for(
        model.eval_input_shape
    )

    x = torch.randn(2, config.fmaps_in, *model.input_shape)
    with torch.no_grad():
        head.bias.fill_(-10.0)  # negative raw outputs, which a sigmoid can never give
        model.train()
        raw = model(x)
        model.eval()
        activated = model(x)
    assert raw.shape == activated.shape == (2, 5, *output_shape)
    assert raw.max() < 0 and activated.min() > 0
    torch.testing.assert_close(activated, torch.sigmoid(raw))


def test_scale_divides_voxel_size_by_upsampling():
    net = CNNectomeUNet(make_config(downsample_factors=[(2, 2)], upsample_factors=[(2, 2), (1, 2)]))
    assert net.scale(Coordinate(8, 8)) == (4, 2)
    assert Model(net, torch.nn.Identity()).scale(Coordinate(16, 4)) == (8, 1)
    with pytest.raises(ValueError, match=r"voxel size \(6, 6\) is not divisible .* \(2, 4\)"):
        net.scale(Coordinate(6, 6))
    plain = CNNectomeUNet(make_config(downsample_factors=[(2, 2)]))
    assert plain.scale(Coordinate(5, 7)) == (5, 7)


def test_attention_gates_and_batch_norm_are_built_when_asked():
    plain = CNNectomeUNet(make_config(downsample_factors=[(2, 2), (2, 2)]))
    fancy = CNNectomeUNet(
        make_config(downsample_factors=[(2, 2), (2, 2)], use_attention=True, batch_norm=True)
    )
    assert plain.gates is None and len(fancy.gates) == 2
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in fancy.modules())


@pytest.mark.parametrize("dims", [2, 3])
def test_channels_last_and_bf16_autocast(dims):
    memory_format = {2: torch.channels_last, 3: torch.channels_last_3d}[dims]
    config = make_config(
        downsample_factors=[(2,) * dims],
        use_attention=True,
        constant_upsample=dims == 2,
        upsample_factors=[(2,) * dims],
    )
    torch.manual_seed(0)
    net = CNNectomeUNet(config).eval()
    x = torch.rand(1, config.fmaps_in, *config.input_shape)
    with torch.no_grad():
        reference = net(x)
        net = net.to(memory_format=memory_format)
        x_last = x.contiguous(memory_format=memory_format)
        torch.testing.assert_close(net(x_last), reference)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x_last)
    assert low.dtype == torch.bfloat16
    assert low.is_contiguous(memory_format=memory_format)
    torch.testing.assert_close(low.float(), reference, atol=0.05, rtol=0.05)

    net.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = net(x_last.requires_grad_()).float().square().mean()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


def test_yaml_round_trip(tmp_path):
    config = make_config(**CASES[7][1])
    loaded = load_config(save_config(config, tmp_path / "unet.yaml"), ArchitectureConfig)
    assert loaded == config
    assert isinstance(loaded.kernel_size_down[0][0], Coordinate)


DACAPO_YAML = """\
__type__: CNNectomeUNetConfig
name: dacapo_unet
input_shape: !!python/tuple [44, 44]
fmaps_out: 2
fmaps_in: 1
num_fmaps: 2
fmap_inc_factor: 2
downsample_factors:
- [2, 2]
kernel_size_down: null
kernel_size_up: null
_eval_shape_increase: [8, 8]
upsample_factors: null
constant_upsample: true
padding: valid
use_attention: false
batch_norm: true
"""


def test_loads_dacapo_yaml_with_private_eval_shape_increase(tmp_path):
    path = tmp_path / "dacapo.yaml"
    path.write_text(DACAPO_YAML)
    ignored: list[str] = []
    config = load_config(path, ignored=ignored)
    assert ignored == []
    assert isinstance(config, CNNectomeUNetConfig)
    assert config.input_shape == (44, 44) and config.downsample_factors == [(2, 2)]
    assert config.eval_shape_increase == (8, 8) and config.batch_norm
    assert CNNectomeUNet(config).eval_shape_increase == (8, 8)
    as_dict = {
        "__type__": "CNNectomeUNetConfig",
        "name": "d",
        "input_shape": [44, 44],
        "fmaps_in": 1,
        "fmaps_out": 1,
        "num_fmaps": 2,
        "fmap_inc_factor": 2,
        "downsample_factors": [[2, 2]],
        "_eval_shape_increase": [4, 8],
    }
    assert from_dict(as_dict).eval_shape_increase == (4, 8)


def test_defaults_follow_dacapo():
    config = CNNectomeUNetConfig(**BASE, input_shape=(44, 44), downsample_factors=[(2, 2)])
    assert (
        config.kernel_size_down,
        config.kernel_size_up,
        config.eval_shape_increase,
        config.upsample_factors,
    ) == (None, None, None, None)
    assert (config.constant_upsample, config.padding, config.batch_norm, config.use_attention) == (
        True,
        "valid",
        False,
        False,
    )
    assert CNNectomeUNet(config).eval_shape_increase == (0, 0)
    geometry = config.geometry()
    assert geometry.kernel_size_down == (((3, 3), (3, 3)),) * 2
    assert geometry.kernel_size_up == (((3, 3), (3, 3)),)
    assert all(f.metadata.get("help") for f in dataclasses.fields(config))
