"""Exercise checkers: ``attnlib.checks.check_*(your_answer)`` prints ✓ or a diagnosis.

Every checker runs the reader's answer on seeded cases chosen to defeat shortcuts, compares it
with attnlib's reference, prints one line - ``✓ name: all N cases passed`` or ``✗ name: <what is
wrong and what to look at>`` - and returns a result that is truthy when the answer is right and
displays nothing in a notebook. A checker never raises because of the reader's code (see
``attnlib.checks._core`` for the framework: known mistakes as data, in-place, shape and causality
probes, one converter for numeric answers).

The checkers live in one module per chapter (``ch04_masking_context`` serves chapter 4) and are
re-exported here by name; ``python -m attnlib.checks`` lists them.
"""

from __future__ import annotations

from ._core import CheckResult
from .ch00_how_to_use import (
    check_causal_mask,
    check_scaled_scores,
    check_sharp_temperature,
    check_softmax,
)
from .ch01_tokens_embeddings import (
    check_cosine_similarity,
    check_embedding_lookup,
    check_positional_encoding,
)
from .ch02_queries_keys import (
    check_predicted_winners,
    check_qk_parameters,
    check_score_grid,
    check_verb_head,
)
from .ch03_softmax_scaling import (
    check_logsumexp,
    check_stable_softmax_half,
    check_temperature_softmax,
)
from .ch04_masking_context import (
    check_attention,
    check_attention_weights,
    check_causal_sdpa,
    check_causality,
    check_combined_mask,
    check_padding_mask,
    check_shift_targets,
)
from .ch05_values import (
    check_colour_values,
    check_projection,
    check_value_params,
    check_value_update,
)
from .ch06_one_head import check_bug_fix, check_head, check_head_params, check_leak_detector
from .ch07_multihead import (
    check_ablation,
    check_merge_heads,
    check_multihead,
    check_param_count,
    check_split_heads,
)
from .ch08_cross_attention import (
    check_alignment_accuracy,
    check_cross_attention,
    check_cross_attention_mask,
)
from .ch09_decoder import check_block, check_block_parameters, check_layernorm, check_reach
from .ch10_training import (
    check_adjective_mass,
    check_cached_step,
    check_next_token_targets,
    check_top_k,
    check_train_step,
)
from .ch11_cost_at_scale import check_crossover, check_kv_cache_memory, check_pattern_memory
from .ch12_cheaper_attention import (
    check_causal_tiles,
    check_online_softmax,
    check_sliding_window_mask,
    check_window_count,
)

__all__ = [
    "CheckResult",
    # chapter 0
    "check_softmax", "check_scaled_scores", "check_sharp_temperature",
    "check_causal_mask",  # ex-00-causal's (chapter 4 teaches it now), kept for older notebooks
    # chapter 1
    "check_embedding_lookup", "check_cosine_similarity", "check_positional_encoding",
    # chapter 2
    "check_score_grid", "check_verb_head", "check_predicted_winners", "check_qk_parameters",
    # chapter 3
    "check_temperature_softmax", "check_stable_softmax_half", "check_logsumexp",
    # chapter 4
    "check_attention", "check_causality", "check_combined_mask", "check_shift_targets",
    "check_padding_mask", "check_attention_weights", "check_causal_sdpa",
    # chapter 5
    "check_value_update", "check_projection", "check_colour_values", "check_value_params",
    # chapter 6
    "check_head", "check_leak_detector", "check_bug_fix", "check_head_params",
    # chapter 7
    "check_split_heads", "check_merge_heads", "check_multihead", "check_ablation",
    "check_param_count",
    # chapter 8
    "check_cross_attention", "check_cross_attention_mask", "check_alignment_accuracy",
    # chapter 9
    "check_layernorm", "check_block", "check_block_parameters", "check_reach",
    # chapter 10
    "check_train_step", "check_top_k", "check_cached_step", "check_adjective_mass",
    "check_next_token_targets",
    # chapter 11
    "check_crossover", "check_pattern_memory", "check_kv_cache_memory",
    # chapter 12
    "check_online_softmax", "check_causal_tiles", "check_sliding_window_mask", "check_window_count",
]
