"""attnlib: the small attention library behind the book.

One concept per module: ``attention`` (the functional core and masks), ``multihead``, ``mlp``,
``decoder`` (blocks, encoder, decoder, generation, configs), ``hooks`` (record patterns, ablate
heads), ``lens`` (the residual stream after every stage, the logit lens), ``params``, ``train``,
``checkpoints`` (small trained models that ship with attnlib), ``viz``,
``widgets`` and ``checks`` (imported on demand: ``from attnlib import widgets, checks``).
"""

from .attention import attention, causal_mask, from_mha_mask, padding_mask, softmax
from .decoder import GPT3, TINY, Decoder, DecoderBlock, DecoderConfig, Encoder
from .device import get_device
from .glue import glue
from .hooks import ablate_heads, layer_stack, record_patterns
from .mlp import MLP
from .multihead import KVCache, MultiHeadAttention
from .params import ParameterCount, count_parameters
from .tokenizer import Tokenizer

__version__ = "0.2.0"

__all__ = [
    "glue",
    "attention", "causal_mask", "padding_mask", "from_mha_mask", "softmax",
    "MultiHeadAttention", "KVCache", "MLP", "DecoderBlock", "Encoder", "Decoder", "DecoderConfig",
    "TINY", "GPT3", "count_parameters", "ParameterCount", "get_device", "Tokenizer",
    "record_patterns", "layer_stack", "ablate_heads",
]
