"""The config of a Run: a DataSplit, Task, Architecture and Trainer (+ an optional Start)."""

from __future__ import annotations

import dataclasses

from .architectures.architecture_config import ArchitectureConfig
from .configs import Config, option
from .datasplits.datasplit_config import DataSplitConfig
from .starts.start_config import StartConfig
from .tasks.task_config import TaskConfig
from .trainers.trainer_config import TrainerConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig(Config):
    """Everything a training run is. Stored as YAML in the run's folder."""

    task_config: TaskConfig = option(help="What the network learns to predict.")
    architecture_config: ArchitectureConfig = option(help="The network.")
    trainer_config: TrainerConfig = option(help="How batches are made and the model stepped.")
    datasplit_config: DataSplitConfig = option(help="Training and validation data.")
    num_iterations: int = option(help="Train until this many iterations are done.", min=1)
    validation_interval: int = option(
        1000, help="Validate (and checkpoint) every this many iterations.", min=1
    )
    repetition: int = option(0, help="Repetition index of otherwise equal runs.", min=0)
    start_config: StartConfig | None = option(
        None, help="Initialise the weights from another run's checkpoint (fine-tuning)."
    )
