from __future__ import annotations

import dataclasses

from ..configs import Config, option


@dataclasses.dataclass(frozen=True, kw_only=True)
class StartConfig(Config):
    """Start a run from the weights of a stored run.

    ``criterion`` picks the checkpoint: an iteration number, ``"latest"``, or
    ``"best:<criterion>"`` (the iteration that scored best on that validation criterion).
    A bare criterion name, as DaCapo writes it (``criterion: voi``), means ``best:voi``.
    ``run`` may also be the path of a DaCapo run folder (or one of its checkpoint files):
    a network trained with DaCapo is then fine-tuned (``criterion``: ``latest`` or an
    iteration).
    """

    name: str = option("start", help="A name for this start config.")
    run: str = option(
        help="Name of the stored run whose weights are loaded, or the path of a DaCapo run "
        "folder (<runs_base_dir>/<run>) or checkpoint file."
    )
    criterion: str = option("latest", help="Iteration number, 'latest' or 'best:<criterion>'.")

    def validate(self) -> None:
        c = str(self.criterion).strip()
        if not c or c == "best:":
            raise self.error(
                "criterion", "is empty", "Use an iteration number, 'latest' or 'best:<criterion>'."
            )
        if not (c == "latest" or c.isdigit() or c.startswith("best:")):
            c = f"best:{c}"
        object.__setattr__(self, "criterion", c)
