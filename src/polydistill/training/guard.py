"""Stop a run whose loss or gradients stop being finite, before the bad step reaches the weights.

The Trainer alone carries on: it logs the average of earlier losses in place of a ``nan``
(``logging_nan_inf_filter``), applies the ``nan`` gradients, and saves a student whose weights
are all ``nan``. The guard sees every loss term as it is computed and every gradient just before
the optimizer applies it (a step pre-hook on the optimizer, after gradient accumulation and,
in a multi-process run, after the gradients were averaged, so every process decides alike).

A non-finite step either stops the run with :class:`TrainingDiverged`, naming the step, the
terms, the gradient norm and the learning rate, or, while ``training.max_nonfinite_steps`` allows,
is skipped as a mixed-precision loss scaler skips an overflowing step: the gradients are dropped,
the optimizer leaves every weight and its own state untouched, the step is logged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from polydistill.console import console
from polydistill.errors import PolydistillError
from polydistill.training.checkpoints import newest_checkpoint


class TrainingDiverged(PolydistillError):
    """The loss or the gradients became non-finite: the run stopped and saved no student."""


@dataclass
class NonFiniteStep:
    """What was not finite in one optimizer step (``step`` is 1-based, as the Trainer logs it)."""

    step: int
    learning_rate: float
    terms: dict[str, float] = field(default_factory=dict)
    total: float | None = None
    grad_norm: float | None = None

    def describe(self) -> str:
        parts = [f"loss term {name} = {value}" for name, value in self.terms.items()]
        if self.total is not None:
            parts.append(f"total loss = {self.total}")
        if self.grad_norm is not None and not math.isfinite(self.grad_norm):
            parts.append(f"gradient norm = {self.grad_norm}")
        return f"step {self.step}: {', '.join(parts)} (learning rate {self.learning_rate:.3g})"


class NonFiniteGuard:
    """Checks one run's losses (:meth:`check_loss`) and gradients (:meth:`before_optimizer_step`)."""

    def __init__(self, *, max_skipped_steps: int = 0, checkpoints_dir: Path | None = None):
        self.max_skipped_steps = max_skipped_steps
        self.checkpoints_dir = checkpoints_dir
        self.skipped: list[NonFiniteStep] = []
        self._pending: NonFiniteStep | None = None

    def check_loss(self, step: int, learning_rate: float, total: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        """Remember a non-finite loss of ``step`` (a micro-batch's; the optimizer step decides)."""
        bad = {name: float(value.detach()) for name, value in terms.items() if not bool(torch.isfinite(value.detach()).all())}
        total_value = float(total.detach())
        if not bad and math.isfinite(total_value):
            return
        if self._pending is None or self._pending.step != step:
            self._pending = NonFiniteStep(step, learning_rate)
        self._pending.terms.update(bad)
        self._pending.total = total_value if not math.isfinite(total_value) else self._pending.total

    def before_optimizer_step(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Raise, or drop the gradients so that the optimizer skips the step, when anything is non-finite."""
        learning_rate = float(optimizer.param_groups[0]["lr"])
        gradients = [p.grad.detach() for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        # in float64 (MPS has none): the norm of large but finite float32 gradients must not overflow to inf
        norms = [torch.linalg.vector_norm(g, dtype=torch.float32 if g.device.type == "mps" else torch.float64) for g in gradients]
        grad_norm = float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
        pending = self._pending if self._pending is not None and self._pending.step == step else None
        self._pending = None
        if pending is None and math.isfinite(grad_norm):
            return
        bad = pending or NonFiniteStep(step, learning_rate)
        bad.grad_norm = grad_norm
        if len(self.skipped) < self.max_skipped_steps:
            self.skipped.append(bad)
            for group in optimizer.param_groups:
                for parameter in group["params"]:
                    parameter.grad = None  # torch optimizers leave a parameter without a gradient as it is
            console.print(
                f"[yellow]Skipped[/] {bad.describe()}; {len(self.skipped)} of training.max_nonfinite_steps: {self.max_skipped_steps}"
            )
            return
        raise TrainingDiverged(self._message(bad))

    def _message(self, bad: NonFiniteStep) -> str:
        lines = [f"training diverged at {bad.describe()}."]
        if self.skipped:
            lines.append(
                f"{len(self.skipped)} earlier non-finite steps were skipped (training.max_nonfinite_steps: {self.max_skipped_steps})."
            )
        lines.append("No student was saved and nothing was evaluated.")
        checkpoint = newest_checkpoint(self.checkpoints_dir) if self.checkpoints_dir else None
        if checkpoint is not None:
            lines.append(
                f"The last good state is {checkpoint} (step {checkpoint.name.rsplit('-', 1)[-1]}): fix the config "
                "(a lower training.learning_rate, a max_grad_norm, or objective weights) and rerun with --resume to continue from it."
            )
        else:
            lines.append(
                "No checkpoint was saved before this step: fix the config (a lower training.learning_rate, a max_grad_norm, "
                "or objective weights) and rerun with --overwrite."
            )
        lines.append("To skip a few such steps instead, as fp16 loss scaling does, set training.max_nonfinite_steps.")
        return "\n".join(lines)


def check_finite_weights(model: torch.nn.Module, what: str) -> None:
    """Refuse to save a model with non-finite weights (a last line of defence behind the guard)."""
    bad = [name for name, tensor in model.state_dict().items() if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise TrainingDiverged(f"{what} has non-finite weights ({shown}); it was not saved")
