"""A word-level tokenizer: text -> list of token ids, and back. Small, exact and readable."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["Tokenizer"]

_WORD = re.compile(r"[A-Za-z0-9']+|[^\sA-Za-z0-9']")


class Tokenizer:
    """Splits text into words and punctuation marks and numbers them.

    The vocabulary is fixed at construction; unknown words map to ``unk`` when it is given and
    raise a ``KeyError`` naming the word otherwise.
    """

    def __init__(self, vocab: Iterable[str], unk: str | None = None):
        self.vocab = list(dict.fromkeys(vocab))
        if unk is not None and unk not in self.vocab:
            self.vocab.append(unk)
        self.unk = unk
        self.stoi = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], extra: Iterable[str] = (), unk: str | None = None) -> Tokenizer:
        """Vocabulary = ``extra`` then every word of ``texts`` in order of first appearance."""
        words = list(extra)
        for t in texts:
            words.extend(cls.split(t))
        return cls(words, unk=unk)

    @staticmethod
    def split(text: str) -> list[str]:
        return _WORD.findall(text.lower())

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str | list[str]) -> list[int]:
        words = self.split(text) if isinstance(text, str) else list(text)
        ids = []
        for w in words:
            if w in self.stoi:
                ids.append(self.stoi[w])
            elif self.unk is not None:
                ids.append(self.stoi[self.unk])
            else:
                raise KeyError(f"Tokenizer: {w!r} is not in the vocabulary of {len(self)} words")
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.vocab[int(i)] for i in ids)

    def tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.vocab[int(i)] for i in ids]
