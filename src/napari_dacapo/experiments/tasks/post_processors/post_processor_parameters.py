from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class PostProcessorParameters:
    """One parameter set of a post-processor sweep, with a stable ``id``."""

    id: int

    @property
    def parameter_names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if f.name != "id"]

    def __str__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)}" for n in self.parameter_names)
        return fields or f"id={self.id}"
