"""Which student layer learns from which teacher layer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerMaps:
    """``hidden_states``: student hidden-state index -> teacher index (0 = embedding output).
    ``attentions``: student layer -> teacher layer (0-based)."""

    hidden_states: dict[int, int]
    attentions: dict[int, int]

    @classmethod
    def from_kept_layers(cls, kept: list[int]) -> LayerMaps:
        """A student copied from teacher layers ``kept`` learns from exactly those layers."""
        hidden = {0: 0} | {i + 1: layer + 1 for i, layer in enumerate(kept)}
        return cls(hidden_states=hidden, attentions=dict(enumerate(kept)))

    @classmethod
    def uniform(cls, student_layers: int, teacher_layers: int) -> LayerMaps:
        """Student layer j learns from teacher layer round((j + 1) * L_t / L_s) - 1, the last from the last."""
        if student_layers > teacher_layers:
            raise ValueError(
                f"cannot build a layer map: the student has more layers ({student_layers}) than "
                f"the teacher ({teacher_layers}); give objectives.<name>.layer_map"
            )
        attentions = {j: round((j + 1) * teacher_layers / student_layers) - 1 for j in range(student_layers)}
        return cls(hidden_states={0: 0} | {j + 1: t + 1 for j, t in attentions.items()}, attentions=attentions)
