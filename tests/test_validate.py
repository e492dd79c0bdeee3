"""Every class of bad input to attnlib's core gets a TypeError/ValueError that names the function,
the argument, what it got and what was expected, and it is raised before any state changes.

One table of cases, one parametrized test; the stateful cases (KV cache, generate) have their own.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import attnlib
import attnlib.lens
import attnlib.train
import attnlib.translation
import attnlib.viz
from attnlib import (
    MLP,
    Decoder,
    DecoderBlock,
    DecoderConfig,
    Encoder,
    KVCache,
    MultiHeadAttention,
    Tokenizer,
    attention,
    causal_mask,
    padding_mask,
)
from attnlib import _validate as V
from attnlib import efficient as E

G = torch.Generator().manual_seed(0)
Q, K, Vv = (torch.randn(2, 3, 5, 4, generator=G) for _ in range(3))
SMALL = DecoderConfig(vocab_size=11, context_len=8, d_model=16, n_layers=2, n_heads=4)
DEC = Decoder(SMALL).eval()
CROSS = Decoder(SMALL.replace(cross_attention=True)).eval()
TOKS = torch.randint(0, 11, (2, 5), generator=G)
NAN_MASK = torch.zeros(5, 5).index_put_((torch.tensor([1]), torch.tensor([2])), torch.tensor(math.nan))
INF_MASK = torch.zeros(5, 5).index_put_((torch.tensor([0]), torch.tensor([0])), torch.tensor(math.inf))
BIG_MASK = torch.zeros(5, 5).index_put_((torch.tensor([0]), torch.tensor([0])), torch.tensor(1e9))
TOK = Tokenizer(["the", "cat", "sat"])
S2S = attnlib.translation.Seq2Seq(attnlib.translation.small_config()).eval()
S2S_B = attnlib.translation.make_batch(attnlib.translation.make_pairs(2))
with torch.device("meta"):  # a model on another device than the tokens (no GPU needed)
    META_DEC, META_ENC = Decoder(SMALL), Encoder(SMALL)


CASES = [
    # ---- attention(): masks, scale, dropout, head size, inputs
    ("attention-nan-mask", lambda: attention(Q, K, Vv, NAN_MASK), ValueError,
     r"attention: a float mask must hold finite numbers or -inf \(blocked\), got 1 NaN and 0 \+inf"),
    ("attention-inf-mask", lambda: attention(Q, K, Vv, INF_MASK, return_weights=True), ValueError,
     r"attention: a float mask must hold finite numbers or -inf \(blocked\), got 0 NaN and 1 \+inf"),
    ("attention-fp16-overflowing-mask",
     lambda: attention(Q.half(), K.half(), Vv.half(), BIG_MASK), ValueError,
     r"got 0 NaN and 1 \+inf entries \(read in torch.float16"),
    ("attention-nan-scale", lambda: attention(Q, K, Vv, scale=math.nan), ValueError,
     r"attention: scale must be a finite number, got nan"),
    ("attention-inf-scale", lambda: attention(Q, K, Vv, scale=math.inf, return_weights=True), ValueError,
     r"attention: scale must be a finite number, got inf"),
    ("attention-str-scale", lambda: attention(Q, K, Vv, scale="0.5"), TypeError,
     r"attention: scale must be a real number, got '0.5'"),
    ("attention-str-dropout", lambda: attention(Q, K, Vv, dropout_p="0.1"), TypeError,
     r"attention: dropout_p must be a real number, got '0.1'"),
    ("attention-none-dropout", lambda: attention(Q, K, Vv, dropout_p=None), TypeError,
     r"attention: dropout_p must be a real number, got None"),
    ("attention-dropout-1", lambda: attention(Q, K, Vv, dropout_p=1.0), ValueError,
     r"attention: dropout_p must lie in \[0, 1\), got 1.0"),
    ("attention-dropout-nan", lambda: attention(Q, K, Vv, dropout_p=math.nan), ValueError,
     r"attention: dropout_p must lie in \[0, 1\), got nan"),
    ("attention-str-is-causal", lambda: attention(Q, K, Vv, is_causal="no"), TypeError,
     r"^attention: is_causal must be True or False, got 'no'$"),
    ("attention-int-return-weights", lambda: attention(Q, K, Vv, return_weights=1), TypeError,
     r"^attention: return_weights must be True or False, got 1$"),
    ("attention-tensor-enable-gqa", lambda: attention(Q, K, Vv, enable_gqa=torch.tensor(True)), TypeError,
     r"^attention: enable_gqa must be True or False, got a torch.bool tensor of shape \(\)$"),
    ("mha-str-is-causal", lambda: MultiHeadAttention(16, 4)(torch.randn(2, 5, 16), is_causal="yes"),
     TypeError, r"^MultiHeadAttention: is_causal must be True or False, got 'yes'$"),
    ("mha-none-return-weights",
     lambda: MultiHeadAttention(16, 4)(torch.randn(2, 5, 16), return_weights=None), TypeError,
     r"^MultiHeadAttention: return_weights must be True or False, got None$"),
    # activations of another dtype than the weights, or not activations at all: named, not torch's
    ("mha-float64-input", lambda: MultiHeadAttention(16, 4)(torch.randn(2, 5, 16, dtype=torch.float64)),
     TypeError, r"^MultiHeadAttention: x must be torch.float32 like the weights, got torch.float64; convert "
                r"one of them \(x.to\(torch.float32\) or module.to\(torch.float64\)\)$"),
    ("mha-token-ids-as-input", lambda: MultiHeadAttention(16, 4)(torch.ones(2, 5, 16, dtype=torch.long)),
     TypeError, r"^MultiHeadAttention: x must be floating point \(activations, not token ids\), got torch.int64$"),
    ("mha-half-context", lambda: MultiHeadAttention(16, 4, d_context=8)(
        torch.randn(2, 5, 16), context=torch.randn(2, 3, 8).half()),
     TypeError, r"^MultiHeadAttention: context must be torch.float32 like the weights, got torch.float16"),
    ("block-wrong-width", lambda: DecoderBlock(SMALL)(torch.randn(2, 5, 15)), ValueError,
     r"^DecoderBlock: x must have shape \(batch, T, 16\), got \(2, 5, 15\)$"),
    ("block-2d-input", lambda: DecoderBlock(SMALL)(torch.randn(5, 16)), ValueError,
     r"^DecoderBlock: x must have shape \(batch, T, 16\), got \(5, 16\)$"),
    ("block-float64-input", lambda: DecoderBlock(SMALL)(torch.randn(2, 5, 16).double()), TypeError,
     r"^DecoderBlock: x must be torch.float32 like the weights, got torch.float64"),
    ("block-list-input", lambda: DecoderBlock(SMALL)([[0.0] * 16]), TypeError,
     r"^DecoderBlock: x must be a torch.Tensor of shape \(batch, T, 16\), got a list$"),
    ("mlp-wrong-width", lambda: MLP(16)(torch.randn(3, 15)), ValueError,
     r"^MLP: x must have shape \(\.\.\., 16\), got \(3, 15\)$"),
    ("mlp-scalar", lambda: MLP(16)(torch.tensor(1.0)), ValueError, r"^MLP: x must have shape \(\.\.\., 16\), got \(\)$"),
    ("mlp-float64-input", lambda: MLP(16)(torch.randn(3, 16).double()), TypeError,
     r"^MLP: x must be torch.float32 like the weights, got torch.float64"),
    ("causal-mask-bad-device-name", lambda: causal_mask(3, device="nope"), ValueError,
     r"^causal_mask: device must be None, a torch.device or a device name like 'cpu' or 'cuda', got 'nope'$"),
    ("causal-mask-int-device", lambda: causal_mask(3, device=0.5), TypeError,
     r"^causal_mask: device must be None, a torch.device or a device name like 'cpu' or 'cuda', got 0.5$"),
    ("config-replace-unknown-field", lambda: SMALL.replace(nheads=2), TypeError,
     r"^DecoderConfig.replace: 'nheads' is not a field of DecoderConfig; the fields are vocab_size, "
     r"context_len, d_model, n_layers, n_heads,"),
    ("config-replace-bad-value", lambda: SMALL.replace(n_heads=3), ValueError,
     r"^DecoderConfig: d_model=16 is not divisible by n_heads=3"),
    ("decoder-config-int", lambda: Decoder(3), TypeError,
     r"^Decoder: config must be a DecoderConfig, e.g. DecoderConfig\(d_model=64, n_heads=4\), got 3$"),
    ("encoder-config-dict", lambda: Encoder({"d_model": 16}), TypeError,
     r"^Encoder: config must be a DecoderConfig, .*got a dict$"),
    ("seq2seq-config-int", lambda: attnlib.translation.Seq2Seq(3), TypeError,
     r"^Seq2Seq: config must be a DecoderConfig, e.g. small_config\(\), got 3$"),
    ("seed-everything-str", lambda: attnlib.train.seed_everything("1"), TypeError,
     r"^seed_everything: seed must be a non-negative int, got '1'$"),
    ("tokenizer-empty", lambda: Tokenizer([]), ValueError,
     r"^Tokenizer: vocab must hold at least one word \(or give unk\)$"),
    ("plot-stream-flow-int", lambda: attnlib.viz.plot_stream_flow(3), TypeError,
     r"^plot_stream_flow: tokens must be a list of tokens \(a column each\), got 3$"),
    ("plot-mask-nan", lambda: attnlib.viz.plot_mask(torch.tensor([[0.0, math.nan]]), ["a"], ["b", "c"]),
     ValueError, r"^plot_mask: a float mask is added to the scores and must hold finite numbers or -inf"),
    ("plot-mask-int-2", lambda: attnlib.viz.plot_mask(torch.tensor([[0, 2]]), ["a"], ["b", "c"]),
     ValueError, r"^plot_mask: an integer mask must hold 0 and 1 only \(1 = may attend\), got \[2\]$"),
    ("seq2seq-src-len-list", lambda: S2S(S2S_B.src, [3, 4], S2S_B.tgt_in), TypeError,
     r"^Seq2Seq.forward: src_len must be an integer tensor of shape \(2,\), the true length of each source "
     r"row, got a list$"),
    ("seq2seq-src-len-too-long", lambda: S2S(S2S_B.src, S2S_B.src_len + 50, S2S_B.tgt_in), ValueError,
     r"^Seq2Seq.forward: every src_len must lie in \[1, \d+\] \(src has \d+ positions\), got 5\d$"),
    ("seq2seq-src-float", lambda: S2S(S2S_B.src.float(), S2S_B.src_len, S2S_B.tgt_in), TypeError,
     r"^Seq2Seq.forward: src must be an integer \(long\) tensor, got torch.float32$"),
    ("seq2seq-tgt-batch", lambda: S2S(S2S_B.src, S2S_B.src_len, S2S_B.tgt_in[:1]), ValueError,
     r"^Seq2Seq.forward: tgt_in must have the batch size of src \(2\), got \(1, \d+\)$"),
    ("seq2seq-tgt-in-float", lambda: S2S(S2S_B.src, S2S_B.src_len, S2S_B.tgt_in.float()), TypeError,
     r"^Seq2Seq.forward: tgt_in must be an integer \(long\) tensor, got torch.float32$"),
    ("seq2seq-tgt-in-id", lambda: S2S(S2S_B.src, S2S_B.src_len, S2S_B.tgt_in + 1000), ValueError,
     r"^Seq2Seq.forward: every id of tgt_in must lie in \[0, vocab_size=\d+\), got 10\d\d$"),
    ("seq2seq-tgt-in-too-long", lambda: S2S(S2S_B.src, S2S_B.src_len, S2S_B.tgt_in.repeat(1, 10)),
     ValueError, r"^Seq2Seq.forward: tgt_in has \d+ positions, more than the decoder's context_len=\d+$"),
    ("seq2seq-targets-id", lambda: S2S(S2S_B.src, S2S_B.src_len, S2S_B.tgt_in, S2S_B.tgt_out + 1000),
     ValueError, r"^Seq2Seq.forward: every target must lie in \[0, vocab_size=\d+\) or be ignore_index=-100"),
    ("seq2seq-targets-shape", lambda: S2S(S2S_B.src, S2S_B.src_len, S2S_B.tgt_in, S2S_B.tgt_out[:, 1:]),
     ValueError, r"^Seq2Seq.forward: targets must have the shape of tgt_in \(2, 8\) \(batch, T\), got \(2, 7\)$"),
    ("seq2seq-src-before-tgt", lambda: S2S(S2S_B.src - 1000, S2S_B.src_len, S2S_B.tgt_in.float()), ValueError,
     r"^Seq2Seq.forward: every id of src must lie in \[0, vocab_size=\d+\), got -\d+$"),
    ("count-parameters-list", lambda: attnlib.count_parameters([1]), TypeError,
     r"^count_parameters: module must be a torch.nn.Module, got a list$"),
    ("attention-head-size-0", lambda: attention(Q[..., :0], K[..., :0], Vv), ValueError,
     r"attention: the head size d \(last dim of q and k\) must be >= 1, got q \(2, 3, 5, 0\)"),
    ("attention-int-mask", lambda: attention(Q, K, Vv, torch.ones(5, 5, dtype=torch.long)), TypeError,
     r"attention: mask must be bool \(True = may attend\) or float.*got dtype torch.int64"),
    ("attention-list-mask", lambda: attention(Q, K, Vv, [[True]]), TypeError,
     r"attention: mask must be a torch.Tensor or None, got a list"),
    ("attention-numpy-q", lambda: attention(Q.numpy(), K, Vv), TypeError,
     r"attention: q must be a torch.Tensor, got a ndarray"),
    # ---- tiled_attention
    ("tiled-nan-scale", lambda: E.tiled_attention(Q, K, Vv, scale=math.nan), ValueError,
     r"tiled_attention: scale must be a finite number, got nan"),
    ("tiled-float-mask", lambda: E.tiled_attention(Q, K, Vv, mask=torch.zeros(5, 5)), TypeError,
     r"tiled_attention: mask must be a bool tensor \(True = may attend\), got dtype torch.float32"),
    ("tiled-block-size-float", lambda: E.tiled_attention(Q, K, Vv, block_size=2.0), TypeError,
     r"tiled_attention: block_size must be a positive int, got 2.0"),
    ("tiled-head-size-0", lambda: E.tiled_attention(Q[..., :0], K[..., :0], Vv), ValueError,
     r"tiled_attention: the head size d"),
    # ---- mask helpers
    ("causal-mask-0", lambda: causal_mask(0), ValueError, r"causal_mask: T_q must be a positive int, got 0"),
    ("causal-mask-bool", lambda: causal_mask(True), TypeError,
     r"causal_mask: T_q must be a positive int, got True"),
    ("padding-mask-T", lambda: padding_mask([1, 2], 2.5), TypeError,
     r"padding_mask: T must be a non-negative int, got 2.5"),
    ("padding-mask-lengths", lambda: padding_mask([[1], [2, 3]], 4), TypeError,
     r"padding_mask: lengths must be a 1-D integer tensor or list, got a list"),
    ("sliding-window-0", lambda: E.sliding_window_mask(4, 0), ValueError,
     r"sliding_window_mask: window must be a positive int, got 0"),
    ("block-sparse-n-summary", lambda: E.block_sparse_mask(4, 2, n_summary=-1), ValueError,
     r"block_sparse_mask: n_summary must be a non-negative int, got -1"),
    # ---- MultiHeadAttention, MLP, configs
    ("mha-d-head-0", lambda: MultiHeadAttention(16, 4, d_head=0), ValueError,
     r"MultiHeadAttention: d_head must be a positive int or None, got 0"),
    ("mha-d-head-negative", lambda: MultiHeadAttention(16, 4, d_head=-2), ValueError,
     r"MultiHeadAttention: d_head must be a positive int or None, got -2"),
    ("mha-d-head-float", lambda: MultiHeadAttention(16, 4, d_head=4.0), TypeError,
     r"MultiHeadAttention: d_head must be a positive int or None, got 4.0"),
    ("mha-d-context-0", lambda: MultiHeadAttention(16, 4, d_context=0), ValueError,
     r"MultiHeadAttention: d_context must be a positive int or None, got 0"),
    ("mha-dropout-1", lambda: MultiHeadAttention(16, 4, dropout=1.0), ValueError,
     r"MultiHeadAttention: dropout must lie in \[0, 1\), got 1.0"),
    ("mha-bias-str", lambda: MultiHeadAttention(16, 4, bias="yes"), TypeError,
     r"MultiHeadAttention: bias must be a bool, got 'yes'"),
    ("mha-kv-cache-type", lambda: MultiHeadAttention(16, 4)(torch.randn(1, 2, 16), kv_cache=[]), TypeError,
     r"MultiHeadAttention: kv_cache must be a KVCache or None, got a list"),
    ("mlp-d-mlp-0", lambda: MLP(16, 0), ValueError, r"MLP: d_mlp must be a positive int or None, got 0"),
    ("mlp-dropout-1", lambda: MLP(16, dropout=1.0), ValueError, r"MLP: dropout must lie in \[0, 1\), got 1.0"),
    ("block-d-mlp-negative", lambda: DecoderBlock(DecoderConfig(d_model=16, n_heads=4, d_mlp=-1)), ValueError,
     r"DecoderConfig: d_mlp must be a positive int or None, got -1"),
    ("config-d-head-0", lambda: DecoderConfig(d_head=0), ValueError,
     r"DecoderConfig: d_head must be a positive int or None, got 0"),
    ("config-d-head-float", lambda: DecoderConfig(d_head=16.0), TypeError,
     r"DecoderConfig: d_head must be a positive int or None, got 16.0"),
    ("config-d-mlp-negative", lambda: DecoderConfig(d_mlp=-4), ValueError,
     r"DecoderConfig: d_mlp must be a positive int or None, got -4"),
    ("config-dropout-1", lambda: DecoderConfig(dropout=1.0), ValueError,
     r"DecoderConfig: dropout must lie in \[0, 1\), got 1.0"),
    ("config-bias-int", lambda: DecoderConfig(bias=1), TypeError, r"DecoderConfig: bias must be a bool, got 1"),
    ("config-n-layers-float", lambda: DecoderConfig(n_layers=2.0), TypeError,
     r"DecoderConfig: n_layers must be a positive int, got 2.0"),
    # ---- Decoder forward
    ("decoder-token-too-big", lambda: DEC(torch.tensor([[1, 11]])), ValueError,
     r"Decoder: every id of tokens must lie in \[0, vocab_size=11\), got 11"),
    ("decoder-token-negative", lambda: DEC(torch.tensor([[-1, 2]])), ValueError,
     r"Decoder: every id of tokens must lie in \[0, vocab_size=11\), got -1"),
    ("encoder-token-too-big", lambda: Encoder(SMALL)(torch.tensor([[12]])), ValueError,
     r"Encoder: every id of tokens must lie in \[0, vocab_size=11\), got 12"),
    ("decoder-target-too-big", lambda: DEC(TOKS, torch.full((2, 5), 11)), ValueError,
     r"Decoder: every target must lie in \[0, vocab_size=11\) or be ignore_index=-100, got 11"),
    ("decoder-target-negative", lambda: DEC(TOKS, torch.full((2, 5), -5)), ValueError,
     r"Decoder: every target must lie in \[0, vocab_size=11\) or be ignore_index=-100, got -5"),
    # tokens and targets of one shape take the training step's one-reduction check first
    ("decoder-token-too-big-with-targets", lambda: DEC(torch.tensor([[1, 11]]), torch.tensor([[1, 2]])),
     ValueError, r"^Decoder: every id of tokens must lie in \[0, vocab_size=11\), got 11$"),
    ("decoder-target-too-big-with-int32", lambda: DEC(TOKS.int(), torch.full((2, 5), 11, dtype=torch.int32)),
     ValueError, r"^Decoder: every target must lie in \[0, vocab_size=11\) or be ignore_index=-100, got 11$"),
    ("decoder-too-long-with-targets", lambda: DEC(torch.ones(1, 9, dtype=torch.long), torch.ones(1, 9, dtype=torch.long)),
     ValueError, r"^Decoder: sequence of length 9 is longer than context_len=8; crop it"),
    ("decoder-tokens-on-another-device", lambda: META_DEC(TOKS, TOKS), ValueError,
     r"^Decoder: tokens are on cpu but the model is on meta; move them with tokens.to\('meta'\)$"),
    ("encoder-tokens-on-another-device", lambda: META_ENC(TOKS), ValueError,
     r"^Encoder: tokens are on cpu but the model is on meta; move them with tokens.to\('meta'\)$"),
    ("decoder-target-shape", lambda: DEC(TOKS, TOKS.reshape(-1)), ValueError,
     r"Decoder: targets must have the shape of tokens \(2, 5\) \(batch, T\), got \(10,\)"),
    ("decoder-target-float", lambda: DEC(TOKS, TOKS.float()), TypeError,
     r"Decoder: targets must be an integer \(long\) tensor, got torch.float32"),
    ("decoder-target-all-ignored", lambda: DEC(TOKS, torch.full((2, 5), -100)), ValueError,
     r"Decoder: every target is ignore_index=-100, so there is no loss to compute"),
    ("decoder-context-without-cross", lambda: DEC(TOKS, context=torch.randn(2, 3, 16)), ValueError,
     r"Decoder: context \(or context_mask\) was given but config.cross_attention is False"),
    ("decoder-cross-without-context", lambda: CROSS(TOKS), ValueError,
     r"Decoder: config.cross_attention is True, so every block has cross-attention; pass context"),
    ("decoder-context-shape", lambda: CROSS(TOKS, context=torch.randn(3, 4, 16)), ValueError,
     r"Decoder: context must have shape \(2, T_context, 16\) for tokens of shape \(2, 5\), got \(3, 4, 16\)"),
    ("decoder-kv-caches-length", lambda: DEC(TOKS, kv_cache=[KVCache()]), ValueError,
     r"Decoder: kv_cache must hold one KVCache per layer \(2\), got 1"),
    ("decoder-kv-caches-type", lambda: DEC(TOKS, kv_cache=KVCache()), TypeError,
     r"Decoder: kv_cache must be a list of 2 KVCache \(one per layer\), got a KVCache"),
    ("block-context-without-cross", lambda: DecoderBlock(SMALL)(torch.randn(1, 2, 16), torch.randn(1, 3, 16)),
     ValueError, r"DecoderBlock: context \(or context_mask\) was given but this block has no cross-attention"),
    # ---- generate
    ("generate-temperature-nan", lambda: DEC.generate(TOKS, 2, temperature=math.nan), ValueError,
     r"Decoder.generate: temperature must be a finite number >= 0.0, got nan"),
    ("generate-max-new-float", lambda: DEC.generate(TOKS, 2.0), TypeError,
     r"Decoder.generate: max_new_tokens must be a non-negative int, got 2.0"),
    ("generate-top-k-0", lambda: DEC.generate(TOKS, 2, top_k=0), ValueError,
     r"Decoder.generate: top_k must be a positive int or None, got 0"),
    ("generate-bad-token", lambda: DEC.generate(torch.tensor([[3, 99]]), 2), ValueError,
     r"Decoder: every id of tokens must lie in \[0, vocab_size=11\), got 99"),
    ("generate-context-without-cross", lambda: DEC.generate(TOKS, 2, context=torch.randn(2, 3, 16)), ValueError,
     r"config.cross_attention is False"),
    # ---- KVCache
    ("kv-update-lengths", lambda: KVCache().update(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 2, 4)), ValueError,
     r"KVCache.update: k and v must have the same \(..., T_new\) dims \(one value per key\), got "
     r"k \(1, 2, 3, 4\) and v \(1, 2, 2, 4\)"),
    ("kv-update-list", lambda: KVCache().update([1.0], torch.randn(1, 2, 2, 4)), TypeError,
     r"KVCache.update: k must be a torch.Tensor, got a list"),
    # ---- Tokenizer
    ("tokenizer-str-vocab", lambda: Tokenizer("abc"), TypeError,
     r"Tokenizer: vocab must be a list of words, got the string 'abc'.*Tokenizer.from_texts"),
    ("tokenizer-int-word", lambda: Tokenizer(["a", 3]), TypeError,
     r"Tokenizer: every word of vocab must be a str, got 3"),
    ("tokenizer-decode-negative", lambda: TOK.decode([-1]), ValueError,
     r"Tokenizer.decode: every id must lie in \[0, 3\) \(the vocabulary\), got -1"),
    ("tokenizer-decode-too-big", lambda: TOK.tokens(torch.tensor([0, 3])), ValueError,
     r"Tokenizer.tokens: every id must lie in \[0, 3\) \(the vocabulary\), got 3"),
    ("tokenizer-decode-float", lambda: TOK.decode([1.5]), TypeError,
     r"Tokenizer.decode: every id must be an int, got 1.5"),
    ("tokenizer-encode-int", lambda: TOK.encode(5), TypeError,
     r"Tokenizer.encode: text must be a str or a list of words, got 5"),
    # ---- found by the audit of 2026-12-04 (second session)
    ("decoder-one-cache-for-every-layer", lambda: DEC(TOKS, kv_cache=[KVCache()] * 2), ValueError,
     r"^Decoder: kv_cache must hold 2 different KVCache objects, one per layer, got the same one more "
     r"than once"),
    ("generate-empty-prompt", lambda: DEC.generate(TOKS[:, :0], 2), ValueError,
     r"^Decoder.generate: tokens must hold a prompt of at least one token per row to continue, got "
     r"shape \(2, 0\)$"),
    ("softmax-list", lambda: attnlib.softmax([1.0, 2.0]), TypeError,
     r"^softmax: scores must be a torch.Tensor, got a list$"),
    ("softmax-bool", lambda: attnlib.softmax(torch.ones(3, dtype=torch.bool)), TypeError,
     r"^softmax: scores must be floating point, got dtype torch.bool$"),
    ("softmax-dim-out-of-range", lambda: attnlib.softmax(torch.zeros(2, 3), dim=5), ValueError,
     r"^softmax: dim must be an int in \[-2, 2\) \(a dim of scores \(2, 3\)\), got 5$"),
    ("softmax-dim-float", lambda: attnlib.softmax(torch.zeros(2, 3), dim=1.0), ValueError,
     r"^softmax: dim must be an int in \[-2, 2\)"),
    ("mha-mask-str", lambda: MultiHeadAttention(16, 4)(torch.randn(1, 3, 16), mask="causal"), TypeError,
     r"^MultiHeadAttention: mask must be a torch.Tensor or None, got 'causal'$"),
    ("mha-nan-mask", lambda: MultiHeadAttention(16, 4)(torch.randn(1, 5, 16), mask=NAN_MASK), ValueError,
     r"^MultiHeadAttention: a float mask must hold finite numbers or -inf"),
    ("encoder-mask-shape", lambda: Encoder(SMALL)(TOKS, mask=torch.ones(3, 3, dtype=torch.bool)), ValueError,
     r"^Encoder.forward: mask of shape \(3, 3\) does not broadcast to the pattern's shape \(2, 4, 5, 5\)"),
    ("encoder-too-long", lambda: Encoder(SMALL)(torch.zeros(1, 9, dtype=torch.long)), ValueError,
     r"^Encoder: sequence of length 9 is longer than context_len=8; crop it$"),
    ("residual-stages-bad-ids", lambda: attnlib.lens.residual_stages(DEC, TOKS + 20), ValueError,
     r"^residual_stages: every id of tokens must lie in \[0, vocab_size=11\), got \d+$"),
    ("logit-lens-float-tokens", lambda: attnlib.lens.logit_lens(DEC, TOKS.float()), TypeError,
     r"^logit_lens: tokens must be an integer \(long\) tensor, got torch.float32$"),
    ("record-patterns-detach-str", lambda: attnlib.record_patterns(DEC, detach="no").__enter__(), TypeError,
     r"^record_patterns: detach must be True or False, got 'no'$"),
    ("record-patterns-names-int", lambda: attnlib.record_patterns(DEC, 3).__enter__(), TypeError,
     r"^record_patterns: names must be a module name or a list of them, got 3$"),
    ("mlp-bias-str", lambda: MLP(8, bias="no"), TypeError, r"^MLP: bias must be True or False, got 'no'$"),
    ("kv-cache-k-v-dtypes", lambda: KVCache().update(torch.zeros(1, 1, 2, 4), torch.zeros(1, 1, 2, 4).double()),
     TypeError, r"^KVCache.update: k and v must have one dtype and device, got k torch.float32 on cpu and v "
     r"torch.float64 on cpu$"),
    # ---- cost helpers
    ("kv-cache-bytes-float", lambda: E.kv_cache_bytes(5, n_layers=1, n_heads=2.0, d_head=4), TypeError,
     r"kv_cache_bytes: n_heads must be a positive int, got 2.0"),
]


@pytest.mark.parametrize("call,exc,message", [pytest.param(c, e, m, id=i) for i, c, e, m in CASES])
def test_bad_input_gets_a_clear_error(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


# --------------------------------------------------------------------------- before any state changes


def test_kv_cache_failed_update_changes_nothing():
    cache = KVCache()
    k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 5)
    cache.update(k, v)
    bad = [
        (torch.randn(1, 2, 1, 4), torch.randn(1, 2, 2, 5), ValueError, r"k and v must have the same"),
        (torch.randn(1, 3, 1, 4), torch.randn(1, 3, 1, 5), ValueError,
         r"k must have shape \(1, 2, 'T_new', 4\) to extend the cache of \(1, 2, 3, 4\), got \(1, 3, 1, 4\)"),
        (torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 6), ValueError, r"v must have shape \(1, 2, 'T_new', 5\)"),
        (torch.randn(1, 2, 1, 4).double(), torch.randn(1, 2, 1, 5).double(), TypeError,
         r"k must be torch.float32 on cpu like the cache, got torch.float64 on cpu"),
        (torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 5).double(), TypeError,
         r"k and v must have one dtype and device, got k torch.float32 on cpu and v torch.float64 on cpu"),
    ]
    for kk, vv, exc, msg in bad:
        with pytest.raises(exc, match=msg):
            cache.update(kk, vv)
        assert cache.k is k and cache.v is v and len(cache) == 3


def test_multihead_kv_cache_unchanged_when_attention_refuses_the_mask():
    m = MultiHeadAttention(16, 4).eval()
    cache = KVCache()
    m(torch.randn(1, 3, 16), kv_cache=cache, is_causal=True)
    before = (cache.k, cache.v)
    with pytest.raises(ValueError, match=r"mask of shape \(2, 2\) does not broadcast"):
        m(torch.randn(1, 1, 16), kv_cache=cache, mask=torch.ones(2, 2, dtype=torch.bool))
    assert (cache.k, cache.v) == before and len(cache) == 3


def test_decoder_kv_cache_unchanged_on_bad_tokens():
    caches = [KVCache() for _ in DEC.blocks]
    DEC(TOKS[:, :3], kv_cache=caches)
    before = [(c.k, c.v) for c in caches]
    with pytest.raises(ValueError, match=r"every id of tokens must lie in"):
        DEC(torch.tensor([[1], [11]]), kv_cache=caches)
    with pytest.raises(ValueError, match=r"different numbers of positions \[0, 3\]"):
        DEC(TOKS[:, :1], kv_cache=[caches[0], KVCache()])
    assert [(c.k, c.v) for c in caches] == before


def test_decoder_checks_every_layers_cache_before_the_first_layer_runs():
    """A cache of layer 1 built for another batch must be refused before layer 0's cache grows."""
    good = [KVCache() for _ in DEC.blocks]
    DEC(TOKS[:, :3], kv_cache=good)
    other = [KVCache() for _ in DEC.blocks]
    DEC(torch.cat([TOKS, TOKS])[:, :3], kv_cache=other)  # batch 4
    mixed = [good[0], other[1]]
    before = [(c.k, c.v) for c in mixed]
    with pytest.raises(ValueError, match=r"^Decoder: kv_cache\[1\] holds keys \(4, 4, 3, 4\) and values "
                       r"\(4, 4, 3, 4\); this model on a batch of 2 needs \(batch=2, kv_heads=4, T_cached, "
                       r"head_dim=4\) for both$"):
        DEC(TOKS[:, 3:4], kv_cache=mixed)
    assert [(c.k, c.v) for c in mixed] == before
    half = [good[0], KVCache()]
    half[1].update(good[1].k.double(), good[1].v.double())
    with pytest.raises(TypeError, match=r"^Decoder: kv_cache\[1\] holds torch.float64 on cpu but "
                       r"kv_cache\[0\] torch.float32 on cpu; the layers' caches must agree$"):
        DEC(TOKS[:, 3:4], kv_cache=half)
    assert len(good[0]) == 3


def test_record_patterns_takes_names_from_any_iterable():
    with attnlib.record_patterns(DEC, (n for n in ["blocks.0.attn"])) as patterns:
        DEC(TOKS)
    assert list(patterns) == ["blocks.0.attn"]


def test_int32_targets_give_the_loss_of_long_ones():
    _, want = DEC(TOKS, TOKS)
    _, got = DEC(TOKS.int(), TOKS.int())
    assert torch.equal(got, want)


@pytest.mark.parametrize("temperature", [1e-40, 1e-46, 1e-300])
def test_generate_below_the_smallest_float_is_greedy(temperature):
    """1e-46 and 1e-300 round to 0 in float32 (0 / 0 = NaN): they must still give the most likely token."""
    greedy = DEC.generate(TOKS, 3, temperature=0.0)
    assert torch.equal(DEC.generate(TOKS, 3, temperature=temperature), greedy)


def test_ablate_heads_takes_numpy_ints():
    with attnlib.ablate_heads(DEC, {"blocks.0.attn": np.array([1, 3])}):
        a, _ = DEC(TOKS)
    with attnlib.ablate_heads(DEC, {"blocks.0.attn": [1, 3]}):
        b, _ = DEC(TOKS)
    assert torch.equal(a, b)


def test_edge_cases_with_an_answer():
    assert attnlib.softmax(torch.zeros(3, 0)).shape == (3, 0)  # rows of no entries: nothing to normalise
    assert padding_mask([], 4).shape == (0, 1, 1, 4)  # an empty batch
    assert padding_mask(torch.tensor([1, 2], device="meta"), 3).device.type == "meta"


def test_sampler_at_temperature_1_is_unchanged():
    """Subtracting the row max before dividing by the temperature leaves temperature 1 bit-exact
    (softmax subtracts it anyway), so seeded samples stay what they were."""
    import attnlib.decoder as D

    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(1)) * 4
    for top_k in (None, 5):
        a = D._sample(logits, 1.0, top_k, torch.Generator().manual_seed(2))
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:] if top_k else None
        ref = logits if kth is None else logits.masked_fill(logits < kth, float("-inf"))
        b = torch.multinomial(torch.softmax(ref, dim=-1), 1, generator=torch.Generator().manual_seed(2))
        assert torch.equal(a, b)


@pytest.mark.parametrize("kv_cache", [True, False])
def test_generate_restores_training_mode_when_it_raises(kv_cache, monkeypatch):
    m = Decoder(SMALL).train()
    import attnlib.decoder as D

    def boom(*args, **kwargs):
        raise RuntimeError("sampling failed")

    monkeypatch.setattr(D, "_sample", boom)
    with pytest.raises(RuntimeError, match="sampling failed"):
        m.generate(TOKS, 3, kv_cache=kv_cache)
    assert m.training, "generate must put the model back in training mode even when it raises"
    with pytest.raises(ValueError, match="top_k"):
        m.generate(TOKS, 3, top_k=-1)
    assert m.training


def test_ignored_targets_still_fine_when_some_are_scored():
    t = TOKS.clone()
    t[:, :3] = -100
    _, loss = DEC(TOKS, t)
    assert torch.isfinite(loss)


def test_targets_fast_path_keeps_every_verdict():
    """targets() first takes one min/max reduction; the cases it must not wave through."""
    ok = torch.tensor([[0, 10], [3, 4]])
    assert V.targets("f", ok, (2, 2), 11) is ok
    with pytest.raises(ValueError, match=r"every target is ignore_index=-100"):  # nothing to score
        V.targets("f", torch.zeros(2, 0, dtype=torch.long), (2, 0), 11)
    with pytest.raises(ValueError, match=r"every target is ignore_index=0"):  # an id as ignore_index
        V.targets("f", torch.zeros(2, 2, dtype=torch.long), (2, 2), 11, ignore_index=0)
    assert V.targets("f", ok, (2, 2), 11, ignore_index=0) is ok
    for bad, got in ((11, "11"), (-1, "-1"), (-100, None)):
        t = ok.clone()
        t[1, 0] = bad
        if got is None:  # ignored, and the others are scored: fine
            assert V.targets("f", t, (2, 2), 11) is t
        else:
            with pytest.raises(ValueError, match=rf"or be ignore_index=-100, got {got}$"):
                V.targets("f", t, (2, 2), 11)


# --------------------------------------------------------------------------- the helpers themselves


@pytest.mark.parametrize("val", [1, 7, np.int64(3), torch.tensor(2).item()])
def test_positive_int_accepts_ints(val):
    assert V.positive_int("f", "n", val) == int(val)


@pytest.mark.parametrize("val,exc", [(0, ValueError), (-1, ValueError), (2.0, TypeError), (True, TypeError),
                                     ("3", TypeError), (None, TypeError)])
def test_positive_int_refuses(val, exc):
    with pytest.raises(exc, match=r"^f: n must be a positive int, got "):
        V.positive_int("f", "n", val)


@pytest.mark.parametrize("val", [0.0, 0.5, 0, np.float32(0.25), torch.tensor(0.1)])
def test_probability_accepts(val):
    assert 0.0 <= V.probability("f", "p", val) < 1.0


@pytest.mark.parametrize("val", [0, 1, 0.0, 1.0, 0.25, np.float64(0.5), torch.tensor(1.0)])
def test_unit_interval_accepts_0_and_1(val):
    assert V.unit_interval("f", "p", val) == float(val)


@pytest.mark.parametrize("val,exc", [(-0.1, ValueError), (1.5, ValueError), (math.nan, ValueError),
                                     (math.inf, ValueError), ("0.5", TypeError), (None, TypeError),
                                     (True, TypeError)])
def test_unit_interval_refuses(val, exc):
    what = r"a probability in \[0, 1\]" if exc is ValueError else "a real number"
    with pytest.raises(exc, match=rf"^f: p must be {what}, got "):
        V.unit_interval("f", "p", val)


def test_finite_float_bounds():
    assert V.finite_float("f", "x", 2, low=0.0) == 2.0
    with pytest.raises(ValueError, match=r"f: x must be a finite number > 0.0 and <= 1.0, got 0"):
        V.finite_float("f", "x", 0, low=0.0, low_open=True, high=1.0)
    with pytest.raises(TypeError, match=r"f: x must be a real number, got True"):
        V.finite_float("f", "x", True)


def test_index_and_non_empty():
    assert V.index("f", "i", 2, 3) == 2
    with pytest.raises(ValueError, match=r"^f: i must lie in \[0, 3\) \(the words\), got -1$"):
        V.index("f", "i", -1, 3, "the words")
    with pytest.raises(TypeError, match=r"^f: i must be an int, got 1.0$"):
        V.index("f", "i", 1.0, 3)
    assert V.non_empty("f", "xs", [1]) == [1]
    with pytest.raises(ValueError, match=r"^f: xs must not be empty$"):
        V.non_empty("f", "xs", [])
    with pytest.raises(TypeError, match=r"^f: xs must be a list or another sequence, got 3$"):
        V.non_empty("f", "xs", 3)


def test_describe():
    assert V.describe(torch.zeros(2, 3)) == "a torch.float32 tensor of shape (2, 3)"
    assert V.describe([1, 2]) == "a list"
    assert V.describe("x" * 100).endswith("...")


def test_the_happy_path_is_untouched():
    """Valid input of every kind still works (fp16 float masks, finite large values, -inf)."""
    m = torch.zeros(5, 5)
    m[0, 1:] = float("-inf")
    m[1, 0] = -1e30  # finite in float32, -inf in fp16: both are allowed
    attention(Q, K, Vv, m)
    attention(Q.half(), K.half(), Vv.half(), m)
    attention(Q, K, Vv, m, dropout_p=0, scale=1)  # ints are numbers too
    attention(Q, K, Vv, scale=torch.tensor(0.5))
    assert attnlib.Tokenizer(("a", "b")).decode(torch.tensor([1, 0])) == "b a"


def test_switches_accept_numpy_bools_as_their_value():
    """A numpy bool (what comparing numpy arrays gives) is a switch like True/False, on attention and
    MultiHeadAttention; only non-bools are refused."""
    want = attention(Q, K, Vv, is_causal=True)
    torch.testing.assert_close(attention(Q, K, Vv, is_causal=np.bool_(True)), want, rtol=0, atol=0)
    out, w = attention(Q, K, Vv, is_causal=np.bool_(False), return_weights=np.bool_(True))
    torch.testing.assert_close(out, attention(Q, K, Vv), rtol=1e-6, atol=1e-6)
    assert w.shape == (2, 3, 5, 5)
    m = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 5, 16, generator=G)
    torch.testing.assert_close(m(x, is_causal=np.bool_(True)), m(x, is_causal=True), rtol=0, atol=0)
    assert V.flags("f", a=np.bool_(True), b=False) == {"a": True, "b": False}


def test_activations_of_another_dtype_pass_under_autocast():
    """Under autocast an input may differ in dtype from the weights (autocast casts both): the checks
    let it through, and the result is autocast's."""
    m, blk, mlp = MultiHeadAttention(16, 4).eval(), DecoderBlock(SMALL).eval(), MLP(16).eval()
    x = torch.randn(2, 5, 16, generator=G)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for f in (lambda: m(x.bfloat16()), lambda: blk(x.bfloat16()), lambda: mlp(x.bfloat16())):
            assert f().shape == (2, 5, 16)
        torch.testing.assert_close(m(x.bfloat16()).float(), m(x).float(), atol=0.05, rtol=0.05)
    assert V.autocast_on("cpu") is False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert V.autocast_on("cpu") is True


def test_mlp_takes_any_leading_dims():
    mlp = MLP(16).eval()
    x = torch.randn(3, 2, 4, 16, generator=G)
    torch.testing.assert_close(mlp(x)[1, 0], mlp(x[1, 0]), rtol=1e-6, atol=1e-6)
    assert mlp(torch.randn(16)).shape == (16,)


def test_autocast_on_falls_back_on_torch_before_2_4(monkeypatch):
    """torch < 2.4's is_autocast_enabled takes no device type (CUDA only) and CPU has its own
    function: autocast_on uses them there."""
    def old_is_autocast_enabled(*args):
        if args:
            raise TypeError("is_autocast_enabled() takes 0 positional arguments but 1 was given")
        return "cuda answer"

    monkeypatch.setattr(torch, "is_autocast_enabled", old_is_autocast_enabled)
    monkeypatch.setattr(torch, "is_autocast_cpu_enabled", lambda: "cpu answer")
    assert V.autocast_on("cuda") == "cuda answer"
    assert V.autocast_on("cpu") == "cpu answer"


def test_causal_mask_takes_device_names_and_devices():
    want = causal_mask(3, 4)
    for dev in ("cpu", torch.device("cpu"), None):
        assert torch.equal(causal_mask(3, 4, device=dev), want)
    assert causal_mask(2, device="meta").device.type == "meta"


def test_id_bounds_reads_both_tensors():
    a = torch.tensor([[3, 9], [4, 5]])
    b = torch.tensor([[-2, 1], [0, 7]])
    assert V.id_bounds(a, b) == [(3, 9), (-2, 7)]
    assert V.id_bounds(a, a) == [(3, 9), (3, 9)]
    assert all(type(v) is int for pair in V.id_bounds(a, b) for v in pair)
    # tensors of one shape are reduced stacked, others one by one: the same answers
    assert V.id_bounds(a, b[:1]) == [(3, 9), (-2, 1)]
    assert V.id_bounds(a.int(), b.int(), a[:, :1].int()) == [(3, 9), (-2, 7), (3, 4)]
    assert V.id_bounds(a.t(), b) == [(3, 9), (-2, 7)]  # not contiguous
    # anything but non-empty id tensors of one dtype and device: None, and each check reads its own
    assert V.id_bounds(a, b.int()) is None and V.id_bounds(a, b[:0]) is None and V.id_bounds(a, [1]) is None
