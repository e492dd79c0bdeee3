"""Count a module's parameters, broken down by component (works on the "meta" device).

    >>> with torch.device("meta"):
    ...     gpt3 = Decoder(GPT3)          # the real module, no memory allocated
    >>> count_parameters(gpt3).by_component["attention"]
    57982058496
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from . import _validate as V
from .mlp import MLP
from .multihead import MultiHeadAttention

__all__ = ["ParameterCount", "count_parameters"]


@dataclass
class ParameterCount:
    total: int
    by_component: dict[str, int] = field(default_factory=dict)

    def share(self, component: str) -> float:
        """Fraction of all parameters that belong to ``component`` (a name such as "attention";
        0.0 for a component the module does not have)."""
        if not isinstance(component, str):
            raise TypeError(f"ParameterCount.share: component must be a str such as 'attention' or 'mlp' (the "
                            f"keys of by_component), got {V.describe(component)}")
        return self.by_component.get(component, 0) / self.total if self.total else 0.0

    def __str__(self) -> str:
        width = max([len(k) for k in self.by_component] + [5])
        lines = [f"{k:<{width}}  {v:>17,}  {self.share(k):6.1%}" for k, v in self.by_component.items()]
        lines.append(f"{'total':<{width}}  {self.total:>17,}")
        return "\n".join(lines)


def _component(module: nn.Module, name: str) -> str:
    if isinstance(module, MultiHeadAttention):
        return "attention"
    if isinstance(module, MLP):
        return "mlp"
    if isinstance(module, nn.LayerNorm):
        return "layernorm"
    if isinstance(module, nn.Embedding):
        return "position embedding" if name.endswith("pos") else "token embedding"
    if name.endswith("unembed"):
        return "unembedding"
    return "other"


def count_parameters(module: nn.Module) -> ParameterCount:
    """Total number of parameters (shared ones counted once) and a breakdown by component:
    attention, mlp, layernorm, token embedding, position embedding, unembedding, other."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"count_parameters: module must be a torch.nn.Module, got {V.describe(module)}")
    owner: dict[int, str] = {}
    # Walk parents before children, so the outermost recognised component claims a parameter
    # (a Linear inside a MultiHeadAttention counts as attention).
    for mod_name, mod in module.named_modules():
        comp = _component(mod, mod_name)
        for p in mod.parameters(recurse=True):
            if id(p) not in owner or owner[id(p)] == "other":
                owner[id(p)] = comp
    counts: dict[str, int] = {}
    total = 0
    for p in module.parameters():  # deduplicated: tied weights counted once
        comp = owner.get(id(p), "other")
        counts[comp] = counts.get(comp, 0) + p.numel()
        total += p.numel()
    return ParameterCount(total=total, by_component=counts)
