"""A toy translation task for cross-attention, generated in code, and a small encoder-decoder.

The source language is English-like: subject, verb, object, adjectives before their noun
(``a fluffy blue creature roamed the verdant forest``). The target language uses the same
words under other names but another word order: adjectives follow their noun and the verb comes
last (``un bestia pelu azur le silva verda vagava``). Every target word translates exactly one
source word, so each target token has a ground-truth *alignment*: the index of its source word.
Because the order differs, a decoder can only produce the right word if its cross-attention
looks at the right source position, which makes the learned pattern easy to score.

    pairs = make_pairs(2000, seed=0)             # list of Pair(src, tgt, align)
    batch = make_batch(pairs[:8])                # padded tensors, see Batch
    model = Seq2Seq(small_config())
    logits, loss = model(batch.src, batch.src_len, batch.tgt_in, batch.tgt_out)
    acc = alignment_accuracy(model.cross_pattern(batch), batch.align)

Decoder positions: the decoder reads ``<bos> t_0 ... t_{n-1}`` and is trained to output
``t_0 ... t_{n-1} <eos>``; query position j is the one that *produces* target word t_j, so the
alignment of row j of a cross-attention pattern is ``align[j]`` (and -1, not scored, for the row
that produces ``<eos>`` and for padding).
"""

from __future__ import annotations

import numbers
import random
from dataclasses import dataclass

import torch
from torch import nn

from . import _validate as V
from .attention import padding_mask
from .decoder import Decoder, DecoderConfig, Encoder
from .hooks import record_patterns
from .tokenizer import Tokenizer

__all__ = [
    "LEXICON", "SPECIALS", "PAD", "BOS", "EOS", "Pair", "Batch", "translate_words", "sample_pair",
    "make_pairs", "src_tokenizer", "tgt_tokenizer", "make_batch", "batch_sampler", "small_config",
    "Seq2Seq", "alignment_accuracy", "exact_match", "plot_alignment",
]

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIALS = (PAD, BOS, EOS)  # ids 0, 1, 2 in both vocabularies

_DETS = {"a": "un", "the": "le"}
_ADJS = {"fluffy": "pelu", "blue": "azur", "verdant": "verda", "big": "grano", "small": "pitu",
         "red": "rosso", "old": "vecho", "quick": "rapi", "green": "verdi", "shy": "timi"}
_NOUNS = {"creature": "bestia", "forest": "silva", "dog": "kane", "cat": "gato", "bird": "avo",
          "fox": "rena", "child": "nino", "river": "flume", "hill": "monto", "owl": "strige"}
_TRANS = {"roamed": "vagava", "saw": "vida", "chased": "kaza", "found": "trova", "liked": "ama",
          "crossed": "trava"}
_INTRANS = {"slept": "dorma", "ran": "kurra", "sang": "kanta"}

#: source word -> target word (one to one, so every target word has exactly one source word).
LEXICON: dict[str, str] = {**_DETS, **_ADJS, **_NOUNS, **_TRANS, **_INTRANS}
_ROLE = {**dict.fromkeys(_DETS, "det"), **dict.fromkeys(_ADJS, "adj"), **dict.fromkeys(_NOUNS, "noun"),
         **dict.fromkeys(_TRANS, "verb"), **dict.fromkeys(_INTRANS, "verb")}


@dataclass(frozen=True)
class Pair:
    """One sentence pair: ``align[j]`` is the index in ``src`` of the word that ``tgt[j]`` translates."""

    src: tuple[str, ...]
    tgt: tuple[str, ...]
    align: tuple[int, ...]


def translate_words(src: list[str] | tuple[str, ...]) -> Pair:
    """Translate a source sentence word by word and reorder it: ``Det Adj* Noun`` becomes
    ``Det Noun Adj*`` and ``Subject Verb Object`` becomes ``Subject Object Verb``.

    Raises ValueError for a word outside the lexicon or a sentence outside the grammar.
    """
    src = _words("translate_words", "src", src)
    unknown = [w for w in src if w not in LEXICON]
    if unknown:
        raise ValueError(f"translate_words: {unknown} not in the lexicon")
    roles = [_ROLE[w] for w in src]
    phrases: list[list[int]] = []  # noun phrases and the verb, as lists of source indices
    i = 0
    while i < len(src):
        if roles[i] == "verb":
            phrases.append([i])
            i += 1
            continue
        if roles[i] != "det":
            raise ValueError(f"translate_words: expected a determiner at position {i}, got {src[i]!r}")
        j = i + 1
        while j < len(src) and roles[j] == "adj":
            j += 1
        if j >= len(src) or roles[j] != "noun":
            raise ValueError(f"translate_words: noun phrase starting at {i} has no noun")
        phrases.append([i, j, *range(i + 1, j)])  # det, noun, then the adjectives in their order
        i = j + 1
    kinds = ["verb" if len(p) == 1 and roles[p[0]] == "verb" else "np" for p in phrases]
    if kinds not in (["np", "verb"], ["np", "verb", "np"]):
        raise ValueError(f"translate_words: expected 'NP verb' or 'NP verb NP', got {kinds}")
    order = [phrases[0], phrases[2], phrases[1]] if len(phrases) == 3 else phrases
    align = tuple(k for p in order for k in p)
    return Pair(src, tuple(LEXICON[src[k]] for k in align), align)


def _words(who: str, name: str, words) -> tuple[str, ...]:
    """A sentence as a non-empty list (or tuple) of words; a bare string is refused (iterating it
    would give its characters)."""
    if isinstance(words, str):
        raise TypeError(f"{who}: {name} must be a list of words, got the string {V.describe(words)}; "
                        "split it first, e.g. text.split()")
    if not isinstance(words, (list, tuple)):
        raise TypeError(f"{who}: {name} must be a list of words, got {V.describe(words)}")
    if not words:
        raise ValueError(f"{who}: {name} must not be empty")
    bad = [w for w in words if not isinstance(w, str)]
    if bad:
        raise TypeError(f"{who}: every word of {name} must be a str, got {V.describe(bad[0])}")
    return tuple(words)


def _pairs(who: str, pairs) -> list[Pair]:
    """A non-empty list of Pair."""
    if isinstance(pairs, Pair):
        raise TypeError(f"{who}: pairs must be a list of Pair, got one Pair; pass [pair]")
    V.non_empty(who, "pairs", pairs)
    for i, p in enumerate(pairs):
        if not isinstance(p, Pair):
            raise TypeError(f"{who}: every item of pairs must be a Pair, got {V.describe(p)} at index {i}")
    return pairs


def _check_pair(who: str, name: str, p: Pair, vocabularies: tuple[Tokenizer, Tokenizer] | None = None) -> None:
    """A Pair ``name``, perhaps made by hand: src and tgt lists of words (each in its side's
    vocabulary, when ``vocabularies`` (source, target) is given), and in align one source index per
    target word."""
    src = _words(who, f"{name}.src", p.src)
    tgt = _words(who, f"{name}.tgt", p.tgt)
    if vocabularies is not None:
        for side, words, tok in (("src", src, vocabularies[0]), ("tgt", tgt, vocabularies[1])):
            unknown = tok.unknown(words)
            if unknown:
                raise ValueError(f"{who}: {name}.{side} has the word {unknown[0]!r}, which is not in the "
                                 f"{'source' if side == 'src' else 'target'} vocabulary (the lexicon)")
    _check_align(who, name, p.align, len(src), len(tgt))


def _check_align(who: str, name: str, align, n_src: int, n_tgt: int) -> None:
    """A Pair's align: ``n_tgt`` ints, each an index into its ``n_src`` source words."""
    if not isinstance(align, (list, tuple)) or not all(V._is_int(a) for a in align):
        raise TypeError(f"{who}: {name}.align must be a list of ints (a source index per target word), "
                        f"got {V.describe(align)}")
    if len(align) != n_tgt:
        raise ValueError(f"{who}: {name}.align must have one source index per target word ({n_tgt}), "
                         f"got {len(align)}")
    bad = [a for a in align if not 0 <= a < n_src]
    if bad:
        raise ValueError(f"{who}: every entry of {name}.align must be an index into its src, in [0, {n_src}), "
                         f"got {bad[0]}")


def _noun_phrase(rng: random.Random, max_adjs: int) -> list[str]:
    n_adj = rng.randint(0, max_adjs)
    return [rng.choice(sorted(_DETS)), *rng.sample(sorted(_ADJS), n_adj), rng.choice(sorted(_NOUNS))]


def sample_pair(rng: random.Random, max_adjs: int = 2) -> Pair:
    """One random sentence of the grammar (a quarter of them intransitive) and its translation."""
    if not all(callable(getattr(rng, f, None)) for f in ("random", "choice", "sample", "randint")):
        raise TypeError(
            f"sample_pair: rng must be a random.Random (e.g. random.Random(0)), got {V.describe(rng)}"
        )
    _max_adjs("sample_pair", max_adjs)
    subj = _noun_phrase(rng, max_adjs)
    if rng.random() < 0.25:
        words = subj + [rng.choice(sorted(_INTRANS))]
    else:
        words = subj + [rng.choice(sorted(_TRANS))] + _noun_phrase(rng, max_adjs)
    return translate_words(words)


def make_pairs(n: int, seed: int = 0, max_adjs: int = 2, exclude=()) -> list[Pair]:
    """``n`` random pairs from a generator seeded with ``seed`` (a non-negative int); source
    sentences in ``exclude`` (a list of Pairs or of source sentences, each a list of words) are
    skipped (use it to keep a test set out of the training set)."""
    n = V.positive_int("make_pairs", "n", n)
    seed = V.nonneg_int("make_pairs", "seed", seed)
    _max_adjs("make_pairs", max_adjs)
    banned = _banned("make_pairs", exclude)
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        p = sample_pair(rng, max_adjs)
        if p.src not in banned:
            out.append(p)
    return out


def _banned(who: str, exclude) -> set[tuple[str, ...]]:
    """The source sentences of ``exclude``: Pairs or lists of words (not a bare string, whose
    characters would be read as sentences)."""
    what = "Pairs or of source sentences (lists of words)"
    if isinstance(exclude, str):
        raise TypeError(f"{who}: exclude must be a list of {what}, got the string {V.describe(exclude)}; "
                        "split it into words and put it in a list, e.g. [text.split()]")
    if isinstance(exclude, Pair):
        raise TypeError(f"{who}: exclude must be a list of {what}, got one Pair; pass [pair]")
    try:
        items = list(exclude)
    except TypeError:
        raise TypeError(f"{who}: exclude must be a list of {what}, got {V.describe(exclude)}") from None
    return {tuple(p.src) if isinstance(p, Pair) else _words(who, f"exclude[{i}]", p) for i, p in enumerate(items)}


def _max_adjs(who: str, max_adjs) -> int:
    """At most as many adjectives before a noun as the lexicon has (each is drawn once)."""
    V.nonneg_int(who, "max_adjs", max_adjs)
    if max_adjs > len(_ADJS):
        raise ValueError(f"{who}: max_adjs must be at most {len(_ADJS)} (the adjectives of the lexicon), "
                         f"got {max_adjs}")
    return max_adjs


def src_tokenizer() -> Tokenizer:
    return Tokenizer([*SPECIALS, *LEXICON])


def tgt_tokenizer() -> Tokenizer:
    return Tokenizer([*SPECIALS, *LEXICON.values()])


@dataclass
class Batch:
    """Padded tensors for B pairs (S = longest source, T = longest target + 1).

    src (B, S) source ids, padded with 0; src_len (B,) true lengths;
    tgt_in (B, T) ``<bos> t_0 .. t_{n-1}`` padded with 0; tgt_out (B, T) ``t_0 .. t_{n-1} <eos>``
    padded with -100 (ignored by the loss); align (B, T) the source index each decoder position
    should attend to, -1 where not scored (the ``<eos>`` row and padding).
    """

    src: torch.Tensor
    src_len: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    align: torch.Tensor

    def to(self, device) -> Batch:
        """The batch with every tensor moved to ``device`` (a name such as "cuda" or a torch.device)."""
        V.device("Batch.to", "device", device)
        return Batch(*(t.to(device) for t in (self.src, self.src_len, self.tgt_in, self.tgt_out, self.align)))


def make_batch(pairs: list[Pair], device=None) -> Batch:
    """Pad a list of pairs into a Batch."""
    _pairs("make_batch", pairs)
    V.device("make_batch", "device", device)
    s_tok, t_tok = src_tokenizer(), tgt_tokenizer()
    for i, p in enumerate(pairs):
        _check_pair("make_batch", f"pairs[{i}]", p, (s_tok, t_tok))
    bos, eos = t_tok.stoi[BOS], t_tok.stoi[EOS]
    B = len(pairs)
    S = max(len(p.src) for p in pairs)
    T = max(len(p.tgt) for p in pairs) + 1
    src = torch.zeros(B, S, dtype=torch.long)
    tgt_in = torch.zeros(B, T, dtype=torch.long)
    tgt_out = torch.full((B, T), -100, dtype=torch.long)
    align = torch.full((B, T), -1, dtype=torch.long)
    for b, p in enumerate(pairs):
        n = len(p.tgt)
        src[b, :len(p.src)] = torch.tensor(s_tok.encode(list(p.src)))
        ids = t_tok.encode(list(p.tgt))
        tgt_in[b, :n + 1] = torch.tensor([bos, *ids])
        tgt_out[b, :n + 1] = torch.tensor([*ids, eos])
        align[b, :n] = torch.tensor(p.align)
    src_len = torch.tensor([len(p.src) for p in pairs])
    batch = Batch(src, src_len, tgt_in, tgt_out, align)
    return batch if device is None else batch.to(device)


def batch_sampler(pairs: list[Pair], batch_size: int, generator: torch.Generator | None = None,
                  device=None):
    """A ``batch_fn`` for ``attnlib.train.train``: each call pads ``batch_size`` random pairs and
    returns the arguments of ``Seq2Seq.forward``: (src, src_len, tgt_in, tgt_out)."""
    _pairs("batch_sampler", pairs)
    vocabularies = src_tokenizer(), tgt_tokenizer()
    for i, p in enumerate(pairs):  # here, not at the first step inside train, under make_batch's name
        _check_pair("batch_sampler", f"pairs[{i}]", p, vocabularies)
    V.positive_int("batch_sampler", "batch_size", batch_size)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"batch_sampler: generator must be a torch.Generator or None, got {V.describe(generator)}"
        )
    V.device("batch_sampler", "device", device)

    def batch_fn():
        idx = torch.randint(len(pairs), (batch_size,), generator=generator).tolist()
        b = make_batch([pairs[i] for i in idx], device)
        return b.src, b.src_len, b.tgt_in, b.tgt_out

    return batch_fn


def small_config(**changes) -> DecoderConfig:
    """A shape that learns the task in a few hundred steps on a CPU (vocab_size is set per side)."""
    base = DecoderConfig(vocab_size=len(src_tokenizer()), context_len=16, d_model=64, n_layers=2,
                         n_heads=4, d_mlp=128)
    return base.replace(**changes)


class Seq2Seq(nn.Module):
    """Encoder-decoder: ``attnlib.Encoder`` reads the source, ``attnlib.Decoder`` with
    cross-attention writes the target; the decoder's queries look at the encoder's outputs.

    ``config`` gives the shape of both halves; each side gets its own vocabulary size.
    """

    def __init__(self, config: DecoderConfig):
        super().__init__()
        if not isinstance(config, DecoderConfig):
            raise TypeError(f"Seq2Seq: config must be a DecoderConfig, e.g. small_config(), got "
                            f"{V.describe(config)}")
        self.config = config
        self.encoder = Encoder(config.replace(vocab_size=len(src_tokenizer()), cross_attention=False))
        self.decoder = Decoder(config.replace(vocab_size=len(tgt_tokenizer()), cross_attention=True))

    def encode(self, src: torch.Tensor, src_len: torch.Tensor):
        """src (B, S) -> (memory (B, S, d_model), key-padding mask (B, 1, 1, S))."""
        self._check_source("Seq2Seq.encode", src, src_len)
        return self._encode(src, src_len)

    def _encode(self, src, src_len):
        mask = padding_mask(src_len.to(src.device), src.shape[1])
        return self.encoder(src, mask=mask), mask

    def _check_source(self, who: str, src, src_len) -> None:
        """src (B, S) ids that fit the encoder, and src_len (B,) the true length of each row."""
        V.token_ids(who, "src", src, self.encoder.config.vocab_size)
        self._check_source_length(who, src)
        B, S = src.shape
        if not isinstance(src_len, torch.Tensor) or src_len.dtype not in V.ID_DTYPES or src_len.shape != (B,):
            raise TypeError(f"{who}: src_len must be an integer tensor of shape ({B},), the true length of "
                            f"each source row, got {V.describe(src_len)}")
        lo, hi = torch.stack(torch.aminmax(src_len)).tolist() if B else (1, S)
        if lo < 1 or hi > S:
            raise ValueError(f"{who}: every src_len must lie in [1, {S}] (src has {S} positions), got "
                             f"{lo if lo < 1 else hi}")

    def forward(self, src, src_len, tgt_in, targets=None, **removed):
        """-> (logits (B, T, tgt_vocab), loss). The patterns: inside ``with
        attnlib.record_patterns(model) as patterns:``, patterns["decoder.blocks.<l>.cross_attn"] is
        layer l's cross-attention (B, n_heads, T, S); or :meth:`cross_pattern`."""
        V.no_return_weights("Seq2Seq.forward", removed, "model", "decoder.blocks.0.cross_attn")
        V.no_other_keywords("Seq2Seq.forward", removed)
        self._check_source("Seq2Seq.forward", src, src_len)
        self._check_target_side(src, tgt_in, targets)
        memory, mask = self._encode(src, src_len)
        return self.decoder(tgt_in, targets, context=memory, context_mask=mask)

    def _check_target_side(self, src, tgt_in, targets) -> None:
        """tgt_in and targets, named as the reader passed them (the decoder would name its own
        arguments, tokens and targets), before the encoder runs; src is checked already."""
        who, c = "Seq2Seq.forward", self.decoder.config
        bounds = V.id_bounds(tgt_in, targets) if targets is not None else None
        V.token_ids(who, "tgt_in", tgt_in, c.vocab_size, bounds and bounds[0])
        if tgt_in.shape[0] != src.shape[0]:
            raise ValueError(f"{who}: tgt_in must have the batch size of src ({src.shape[0]}), "
                             f"got {tuple(tgt_in.shape)}")
        if tgt_in.shape[1] > c.context_len:
            raise ValueError(f"{who}: tgt_in has {tgt_in.shape[1]} positions, more than the decoder's "
                             f"context_len={c.context_len}")
        if targets is not None:
            V.targets(who, targets, tuple(tgt_in.shape), c.vocab_size, bounds=bounds and bounds[1], like="tgt_in")

    def _check_source_length(self, who: str, src: torch.Tensor) -> None:
        """src (B, S) fits the encoder: S <= its context_len (it has that many position embeddings)."""
        if src.shape[1] > self.encoder.config.context_len:
            raise ValueError(f"{who}: src has {src.shape[1]} positions, more than the encoder's "
                             f"context_len={self.encoder.config.context_len}")

    @torch.no_grad()
    def cross_pattern(self, batch: Batch, layer: int = -1, head: int | None = None) -> torch.Tensor:
        """Teacher-forced cross-attention pattern of one layer, (B, T, S): one head's, or the
        average over the layer's heads when ``head`` is None."""
        who = "Seq2Seq.cross_pattern"
        if not isinstance(batch, Batch):
            raise TypeError(f"{who}: batch must be a Batch (from make_batch), got {V.describe(batch)}")
        n_layers = len(self.decoder.blocks)
        is_int = isinstance(layer, numbers.Integral) and not isinstance(layer, bool)
        if not (is_int and -n_layers <= layer < n_layers):
            raise ValueError(f"{who}: layer must be an int in [-{n_layers}, {n_layers}) (-1 is the last "
                             f"layer), got {layer!r}")
        if head is not None:
            V.index(who, "head", head, self.config.n_heads, "the heads of a layer")
        name = f"decoder.blocks.{layer % n_layers}.cross_attn"
        was = self.training
        self.eval()
        try:
            with record_patterns(self, [name]) as patterns:
                self(batch.src, batch.src_len, batch.tgt_in)
        finally:
            self.train(was)
        w = patterns[name]  # (B, H, T, S)
        return w.mean(dim=1) if head is None else w[:, head]

    @torch.no_grad()
    def translate(self, src_words: list[str] | tuple[str, ...], max_len: int | None = None) -> list[str]:
        """Greedy decoding of one source sentence; stops at ``<eos>``."""
        s_tok, t_tok = src_tokenizer(), tgt_tokenizer()
        src_words = _words("Seq2Seq.translate", "src_words", src_words)
        unknown = [w for w in src_words if w not in s_tok.stoi]
        if unknown:
            raise ValueError(f"Seq2Seq.translate: {unknown} not in the source vocabulary (the lexicon)")
        if len(src_words) > self.encoder.config.context_len:
            raise ValueError(f"Seq2Seq.translate: src_words has {len(src_words)} words, more than the "
                             f"encoder's context_len={self.encoder.config.context_len}")
        max_len = V.optional_positive_int("Seq2Seq.translate", "max_len", max_len)
        device = next(self.parameters()).device
        src = torch.tensor([s_tok.encode(list(src_words))], device=device)
        memory, mask = self.encode(src, torch.tensor([src.shape[1]], device=device))
        start = torch.tensor([[t_tok.stoi[BOS]]], device=device)
        n = max_len if max_len is not None else self.decoder.config.context_len - 1
        out = self.decoder.generate(start, n, temperature=0.0, context=memory, context_mask=mask)
        words = t_tok.tokens(out[0, 1:].tolist())
        return words[:words.index(EOS)] if EOS in words else words


def alignment_accuracy(pattern: torch.Tensor, align: torch.Tensor) -> float:
    """Fraction of scored query rows whose largest weight falls on the aligned key.

    pattern (B, T_q, T_k) or (T_q, T_k); align of the same leading shape (B, T_q) or (T_q,), with
    the aligned key index per row and -1 for rows that are not scored.
    """
    V.tensor("alignment_accuracy", "pattern", pattern, floating=True)
    V.tensor("alignment_accuracy", "align", align)
    if align.is_floating_point() or align.dtype is torch.bool:
        raise TypeError(f"alignment_accuracy: align must be an integer tensor, got dtype {align.dtype}")
    if pattern.ndim == 2:
        pattern, align = pattern.unsqueeze(0), align.unsqueeze(0)
    if pattern.ndim != 3 or tuple(align.shape) != tuple(pattern.shape[:2]):
        raise ValueError(
            f"alignment_accuracy: pattern must be (B, T_q, T_k) and align (B, T_q), got "
            f"{tuple(pattern.shape)} and {tuple(align.shape)}"
        )
    scored = align >= 0
    if align.numel() == 0:
        raise ValueError("alignment_accuracy: align has no scored row (it is empty)")
    n_scored, lo, hi = torch.stack([scored.sum(), align.min(), align.max()]).tolist()  # one synchronisation
    if lo < -1 or hi >= pattern.shape[-1]:
        raise ValueError(f"alignment_accuracy: every entry of align must be a key index in [0, "
                         f"{pattern.shape[-1]}) or -1 (not scored), got {lo if lo < -1 else hi}")
    if n_scored == 0:
        raise ValueError("alignment_accuracy: align has no scored row (all -1)")
    hits = pattern.argmax(dim=-1) == align.to(pattern.device)
    return (hits & scored).sum().item() / scored.sum().item()


def exact_match(model: Seq2Seq, pairs: list[Pair]) -> float:
    """Fraction of pairs whose greedy translation equals the reference exactly."""
    if not isinstance(model, Seq2Seq):
        raise TypeError(f"exact_match: model must be a Seq2Seq, got {V.describe(model)}")
    _pairs("exact_match", pairs)
    return sum(model.translate(p.src) == list(p.tgt) for p in pairs) / len(pairs)


def plot_alignment(pair: Pair, ax=None, title: str | None = None):
    """Draw a pair as two rows of words, source above and target below, with a line from each
    target word to the source word it translates. Crossing lines are reordered words."""
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    if not isinstance(pair, Pair):
        raise TypeError(
            f"plot_alignment: pair must be a Pair (e.g. translate_words(words)), got {V.describe(pair)}"
        )
    _check_pair("plot_alignment", "pair", pair)
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"plot_alignment: ax must be a matplotlib Axes or None (a new figure), got {V.describe(ax)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 * max(len(pair.src), 4) + 1, 1.8))
    n = len(pair.src)
    for i, w in enumerate(pair.src):
        ax.text(i, 1, w, ha="center", va="bottom", fontsize=10)
    for j, (w, a) in enumerate(zip(pair.tgt, pair.align, strict=True)):
        ax.text(j, 0, w, ha="center", va="top", fontsize=10, color="C3")
        ax.plot([a, j], [0.95, 0.05], color="C0" if a == j else "C1", lw=1.5)
    ax.set_xlim(-0.7, n - 0.3)
    ax.set_ylim(-0.4, 1.4)
    ax.set_yticks([0, 1], ["target", "source"])
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title)
    return ax
