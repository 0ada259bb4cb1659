"""DistillationTrainer: a ``transformers.Trainer`` whose loss is a weighted sum of objectives.

Everything else (mixed precision, gradient accumulation, checkpoints, resume, logging,
multi-process training through accelerate/torchrun) is the Trainer's own. The overrides are:
``compute_loss`` (run the frozen teacher and the objectives), ``create_optimizer`` (also train
the objectives' projections; let the :class:`~polydistill.training.guard.NonFiniteGuard` see every
step's gradients), ``log`` (log every term under its own name), ``_save`` /
``_load_from_checkpoint`` (keep the projections beside each checkpoint, never inside the student)
and ``_load_optimizer_and_scheduler`` (a resumed run takes the learning rate of its config, so a
run that diverged continues with the lower rate the user fixed it with).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedModel, Trainer, TrainerCallback
from transformers.modeling_outputs import SequenceClassifierOutput

from polydistill.console import console
from polydistill.data.columns import column_values, language_column
from polydistill.data.sampling import LanguageBalancedSampler
from polydistill.models.pooling import last_hidden_state, mean_pool, needs_hidden_states_to_pool
from polydistill.objectives import ObjectiveSet, Outputs
from polydistill.objectives.capture import QKVRecorder
from polydistill.training.cache import TeacherCache
from polydistill.training.guard import NonFiniteGuard

DISTILLATION_HEADS_FILE = "distillation_heads.safetensors"
STUDENT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class DistillationTrainer(Trainer):
    #: objectives return per-batch means; let the Trainer divide by gradient-accumulation steps
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args,
        teacher: PreTrainedModel | None,
        objectives: ObjectiveSet,
        language_alpha: float | None = None,
        source_shares: list[float] | None = None,
        teacher_cache: TeacherCache | None = None,
        guard: NonFiniteGuard | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.guard = guard or NonFiniteGuard(checkpoints_dir=Path(self.args.output_dir or "."))
        self.language_alpha = language_alpha
        self.source_shares = source_shares
        self.teacher_cache = teacher_cache
        self.requires = objectives.requires
        self.objectives = objectives.to(self.args.device)
        if self.args.world_size > 1 and any(p.requires_grad for p in objectives.parameters()):
            # projections must have their gradients averaged across processes like the student's
            self.objectives = self.accelerator.prepare_model(objectives)
        self.teacher = teacher
        if teacher is not None:
            teacher.requires_grad_(False)
            teacher.eval()
            teacher.to(self.args.device)  # type: ignore[arg-type]  # transformers types PreTrainedModel.to through functools.wraps
        self._recorders = self._qkv_recorders(objectives)
        self._term_sums: dict[str, float] = defaultdict(float)
        self._term_steps = 0

    def _qkv_recorders(self, objectives: ObjectiveSet) -> dict[str, QKVRecorder]:
        if "qkv" not in self.requires:
            return {}
        # only fine-tuning has no teacher, and its one objective (labels) records nothing
        assert self.model is not None and self.teacher is not None
        # an objective that requires qkv names the layer pair to record (AttentionRelations' interface)
        needing: list[Any] = [o for o in objectives.objectives.values() if "qkv" in o.requires]
        return {
            "student": QKVRecorder(self.model, [o.student_layer for o in needing]),
            "teacher": QKVRecorder(self.teacher, [o.teacher_layer for o in needing]),
        }

    # ------------------------------------------------------------------ loss

    def _forward(self, model: nn.Module, inputs: dict[str, torch.Tensor], role: str) -> Outputs:
        output = model(
            **inputs,
            output_hidden_states="hidden_states" in self.requires or ("embeddings" in self.requires and needs_hidden_states_to_pool(model)),
            output_attentions="attentions" in self.requires,
        )
        recorder = self._recorders.get(role)
        embeddings = None
        if "embeddings" in self.requires:
            last = last_hidden_state(output)
            assert last is not None  # the models are asked for hidden states where their output lacks last_hidden_state
            embeddings = mean_pool(last, inputs["attention_mask"])
        return Outputs(
            logits=getattr(output, "logits", None),
            hidden_states=output.hidden_states,
            attentions=output.attentions,
            qkv=recorder.take() if recorder else {},
            attention_mask=inputs["attention_mask"],
            embeddings=embeddings,
        )

    def teacher_outputs(self, inputs: dict[str, torch.Tensor]) -> Outputs:
        if self.teacher_cache is not None and "example_index" in inputs:
            return self.teacher_cache.outputs(inputs)
        if self.teacher is None:
            return Outputs()
        prefix = "teacher_" if "teacher_input_ids" in inputs else ""
        teacher_inputs = {k: inputs[prefix + k] for k in STUDENT_INPUTS if prefix + k in inputs}
        # no_grad, not inference_mode: teacher tensors are saved for the student's backward pass
        with torch.no_grad():
            return self._forward(self.teacher, teacher_inputs, "teacher")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        student = self._forward(model, {k: inputs[k] for k in STUDENT_INPUTS if k in inputs}, "student")
        if "translation_input_ids" in inputs:
            translation = {k: inputs[f"translation_{k}"] for k in STUDENT_INPUTS if f"translation_{k}" in inputs}
            student.translation_embeddings = self._forward(model, translation, "student").embeddings
        teacher = self.teacher_outputs(inputs)
        loss, terms = self.objectives(student, teacher, inputs)
        if model.training:
            learning_rate = self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else self.args.learning_rate
            self.guard.check_loss(self.state.global_step + 1, learning_rate, loss, terms)
            self._term_steps += 1
            for term, value in terms.items():
                self._term_sums[term] += value.detach().item()
        if return_outputs:
            return loss, SequenceClassifierOutput(loss=loss, logits=student.logits if student.logits is not None else student.embeddings)
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._term_steps:
            logs.update({f"loss_{term}": round(total / self._term_steps, 6) for term, total in self._term_sums.items()})
            self._term_sums.clear()
            self._term_steps = 0
        super().log(logs, start_time)

    # ------------------------------------------------------------------ sampling, optimizer, checkpoints

    def _get_train_sampler(self, train_dataset=None):
        """Language-balanced sampling (p ~ n_lang^alpha), and sources drawn by their shares, when the run asks for them."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        by_source = self.source_shares is not None and "source" in dataset.column_names
        if not by_source and (self.language_alpha is None or "lang" not in dataset.column_names):
            return super()._get_train_sampler(train_dataset)
        sampler = LanguageBalancedSampler(
            language_column(dataset),
            1.0 if self.language_alpha is None else self.language_alpha,  # 1: rows of a source drawn uniformly
            seed=self.args.seed,
            sources=column_values(dataset, "source") if by_source else None,
            source_shares=self.source_shares if by_source else None,
        )
        self.add_callback(_SamplerEpoch(sampler))
        return sampler

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        extra = [p for p in self.objectives.parameters() if p.requires_grad]
        if extra and not any(p is extra[0] for group in optimizer.param_groups for p in group["params"]):
            optimizer.add_param_group({"params": extra, "weight_decay": 0.0})
        if not getattr(optimizer, "_polydistill_guarded", False):
            optimizer.register_step_pre_hook(
                lambda optimizer, args, kwargs: self.guard.before_optimizer_step(optimizer, self.state.global_step + 1)
            )
            optimizer._polydistill_guarded = True  # create_optimizer may be called again
        return optimizer

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None or self.optimizer is None:
            return
        wanted = self.args.learning_rate
        for index, group in enumerate(self.optimizer.param_groups):
            saved = group.get("initial_lr")
            if saved is None or saved == wanted:
                continue
            group["lr"] *= wanted / saved
            group["initial_lr"] = wanted
            if self.lr_scheduler is not None and hasattr(self.lr_scheduler, "base_lrs"):
                self.lr_scheduler.base_lrs[index] = wanted
            if index == 0:
                console.print(f"[bold]Resuming[/] with learning rate {wanted:g} (the checkpoint's run used {saved:g})")

    def _objective_state(self) -> dict[str, torch.Tensor]:
        objectives = self.accelerator.unwrap_model(self.objectives)
        return {k: v.detach().cpu().contiguous() for k, v in objectives.state_dict().items()}

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        output_dir = output_dir or self.args.output_dir
        assert output_dir is not None  # TrainingArguments.__post_init__ fills a missing output_dir
        heads = self._objective_state()
        if heads and self.args.should_save:
            save_file(heads, os.path.join(output_dir, DISTILLATION_HEADS_FILE))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, DISTILLATION_HEADS_FILE)
        if os.path.isfile(path):
            self.accelerator.unwrap_model(self.objectives).load_state_dict(load_file(path))


class _SamplerEpoch(TrainerCallback):
    """Gives the language-balanced sampler each epoch's number, so every epoch draws anew."""

    def __init__(self, sampler):
        self.sampler = sampler

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.sampler.set_epoch(int(state.epoch or 0))
