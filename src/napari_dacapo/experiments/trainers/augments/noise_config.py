"""Config of random noise (DaCapo's ``NoiseAugmentConfig``)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

from ...configs import option

from .augment import Augment
from .augment_config import AugmentConfig
from .intensity_augments import NoiseAugment

NOISE_MODES = ("gaussian", "poisson", "salt", "pepper", "s&p", "speckle")

#: The parameters each ``skimage.util.random_noise`` mode takes.
_MODE_PARAMETERS = {
    "gaussian": ("mean", "var"),
    "speckle": ("mean", "var"),
    "poisson": (),
    "salt": ("amount",),
    "pepper": ("amount",),
    "s&p": ("amount", "salt_vs_pepper"),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class NoiseAugmentConfig(AugmentConfig):
    """Add random noise to the raw intensities (``skimage.util.random_noise``).

    DaCapo configs that pass skimage's arguments as ``kwargs`` load into the named fields.

    Examples
    --------
    >>> NoiseAugmentConfig(name="noise", mode="gaussian", var=0.01)
    """

    augment_type: ClassVar[type[Augment]] = NoiseAugment
    aliases: ClassVar[tuple[str, ...]] = ("GaussianNoiseAugmentConfig",)

    mode: Literal["gaussian", "poisson", "salt", "pepper", "s&p", "speckle"] = option(
        "gaussian", help="Kind of noise.", choices=NOISE_MODES
    )
    mean: float = option(0.0, help="Mean of gaussian or speckle noise.")
    var: float = option(0.01, help="Variance of gaussian or speckle noise.", min=0.0)
    amount: float = option(
        0.05, help="Fraction of voxels replaced by salt and/or pepper noise.", min=0.0, max=1.0
    )
    salt_vs_pepper: float = option(
        0.5, help="Fraction of salt among salt-and-pepper noise ('s&p').", min=0.0, max=1.0
    )
    clip: bool = option(
        True, help="Clip the noisy intensities to the input's range ([0, 1] or [-1, 1])."
    )
    kwargs: dict[str, Any] | None = option(
        None,
        help="DaCapo's spelling: keyword arguments of skimage's random_noise (mode, mean, "
        "var, amount, salt_vs_pepper, clip); folded into the fields above when loaded.",
        advanced=True,
    )

    def validate(self) -> None:
        if self.kwargs:
            known = {"mode", "mean", "var", "amount", "salt_vs_pepper", "clip"}
            unknown = sorted(set(self.kwargs) - known)
            if unknown:
                raise self.error(
                    "kwargs", f"has unsupported keys {unknown}",
                    f"Use only {', '.join(sorted(known))}.",
                )
            for key, value in self.kwargs.items():
                object.__setattr__(self, key, value)
            object.__setattr__(self, "kwargs", None)
            # Check the values that came from kwargs like any other field value.
            self.__post_init__()

    def noise_parameters(self) -> dict[str, Any]:
        """The skimage parameters of this config's mode."""
        return {name: getattr(self, name) for name in _MODE_PARAMETERS[self.mode]}
