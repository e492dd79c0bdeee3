"""count_parameters: GPT-3 on the meta device, and a hand count of the tiny preset."""

from __future__ import annotations

import pytest
import torch

from attnlib import GPT3, MLP, TINY, Decoder, Encoder, MultiHeadAttention, count_parameters


@pytest.fixture(scope="module")
def gpt3_count():
    with torch.device("meta"):  # the real module, no memory allocated
        model = Decoder(GPT3)
    assert next(model.parameters()).device.type == "meta"
    return model, count_parameters(model)


def test_gpt3_attention_parameters(gpt3_count):
    model, count = gpt3_count
    per_block = count_parameters(model.blocks[0].attn).total
    assert per_block == 603_979_776 == 4 * 12288 * 12288
    assert count.by_component["attention"] == 57_982_058_496 == 96 * per_block


def test_gpt3_total_and_shares(gpt3_count):
    _, count = gpt3_count
    assert 174e9 < count.total < 176e9
    assert count.total == sum(count.by_component.values())
    assert count.by_component["mlp"] == 96 * 2 * 12288 * 4 * 12288
    assert count.by_component["token embedding"] == 50257 * 12288
    assert count.by_component["position embedding"] == 2048 * 12288
    assert count.by_component["layernorm"] == (2 * 96 + 1) * 12288  # weights only: bias=False
    assert count.by_component.get("unembedding", 0) == 0  # tied to the token embedding
    assert count.share("attention") == pytest.approx(1 / 3, abs=0.005)
    assert count.share("mlp") == pytest.approx(2 / 3, abs=0.01)
    assert count.share("no such component") == 0.0


def tiny_by_hand(cfg, tied: bool) -> dict[str, int]:
    d, L, V, T, m = cfg.d_model, cfg.n_layers, cfg.vocab_size, cfg.context_len, cfg.mlp_dim
    inner = cfg.n_heads * cfg.head_dim
    out = {
        "attention": L * (3 * d * inner + inner * d),
        "mlp": L * 2 * d * m,
        "layernorm": (2 * L + 1) * d,
        "token embedding": V * d,
        "position embedding": T * d,
    }
    if not tied:
        out["unembedding"] = V * d
    return out


@pytest.mark.parametrize("tied", [True, False])
def test_tiny_counts_by_hand(tied):
    cfg = TINY.replace(tie_embeddings=tied)
    count = count_parameters(Decoder(cfg))
    expected = tiny_by_hand(cfg, tied)
    assert {k: v for k, v in count.by_component.items() if v} == expected
    assert count.total == sum(expected.values())
    if tied:  # 64*64 tok + 32*64 pos + 2*(16384 attention + 32768 mlp + 128 ln) + 64 final ln
        assert count.total == 104_768
    # torch agrees on the total (it also deduplicates shared parameters)
    assert count.total == sum(p.numel() for p in Decoder(cfg).parameters())


def test_tied_embedding_counted_once():
    model = Decoder(TINY)
    assert model.unembed.weight is model.embed.tok.weight
    count = count_parameters(model)
    untied = count_parameters(Decoder(TINY.replace(tie_embeddings=False)))
    assert untied.total - count.total == TINY.vocab_size * TINY.d_model


def test_biases_and_other_modules():
    cfg = TINY.replace(bias=True)
    count = count_parameters(Decoder(cfg))
    d, inner, m, L = cfg.d_model, cfg.n_heads * cfg.head_dim, cfg.mlp_dim, cfg.n_layers
    assert count.by_component["attention"] == L * (4 * d * inner + 3 * inner + d)
    assert count.by_component["mlp"] == L * (2 * d * m + m + d)
    assert count.by_component["layernorm"] == (2 * L + 1) * 2 * d
    assert count_parameters(MLP(8)).by_component == {"mlp": 2 * 8 * 32}
    assert count_parameters(MultiHeadAttention(8, 2)).by_component == {"attention": 4 * 64}
    assert count_parameters(torch.nn.Linear(3, 2)).by_component == {"other": 8}
    enc = count_parameters(Encoder(TINY))
    assert "unembedding" not in enc.by_component and enc.by_component["attention"] == 2 * 4 * 64 * 64


def test_printable_table():
    text = str(count_parameters(Decoder(TINY)))
    assert "attention" in text and "total" in text and "104,768" in text
