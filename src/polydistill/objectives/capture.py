"""Record the query, key and value projections of chosen layers with forward hooks.

transformers returns hidden states and attention weights but not Q/K/V. Rather than adapting
each model family's forward, we hook the projection ``nn.Linear`` modules, found by their names
in the families transformers ships: ``...layer.<i>.attention.self.{query,key,value}`` (BERT,
XLM-R and most encoders) and ``...layer.<i>.attention.{q_lin,k_lin,v_lin}`` (DistilBERT).
"""

from __future__ import annotations

import re

import torch
from torch import nn

_PROJECTION = re.compile(r"\.layer\.(\d+)\.attention\.(?:self\.)?(query|key|value|q_lin|k_lin|v_lin)$")
_ROLE = {"query": "query", "key": "key", "value": "value", "q_lin": "query", "k_lin": "key", "v_lin": "value"}


def attention_projections(model: nn.Module) -> dict[int, dict[str, nn.Module]]:
    found: dict[int, dict[str, nn.Module]] = {}
    for name, module in model.named_modules():
        match = _PROJECTION.search(name)
        if match:
            found.setdefault(int(match.group(1)), {})[_ROLE[match.group(2)]] = module
    return found


class QKVRecorder:
    """Keeps the latest Q/K/V outputs of ``layers`` (0-based, negatives count from the end)."""

    def __init__(self, model: nn.Module, layers: list[int]):
        projections = attention_projections(model)
        if not projections:
            raise ValueError(
                f"{type(model).__name__}: no self-attention query/key/value projections found "
                "(attention_relations supports BERT, XLM-R and DistilBERT style encoders)"
            )
        count = len(projections)
        self.layers = sorted({layer % count for layer in layers})
        self.outputs: dict[int, dict[str, torch.Tensor]] = {}
        self._handles = []
        for layer in self.layers:
            for role, module in projections[layer].items():
                self._handles.append(module.register_forward_hook(self._recorder(layer, role)))

    def _recorder(self, layer: int, role: str):
        def hook(module, inputs, output):
            self.outputs.setdefault(layer, {})[role] = output

        return hook

    def take(self) -> dict[int, dict[str, torch.Tensor]]:
        outputs, self.outputs = self.outputs, {}
        return outputs

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
