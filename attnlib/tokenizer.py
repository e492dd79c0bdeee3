"""A word-level tokenizer: text -> list of token ids, and back. Small, exact and readable."""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable

from . import _validate as V

__all__ = ["Tokenizer"]

_WORD = re.compile(r"[A-Za-z0-9']+|[^\sA-Za-z0-9']")


class Tokenizer:
    """Splits text into words and punctuation marks and numbers them.

    The vocabulary is fixed at construction; unknown words map to ``unk`` when it is given and
    raise a ``KeyError`` naming the word otherwise.
    """

    def __init__(self, vocab: Iterable[str], unk: str | None = None):
        if isinstance(vocab, str):
            raise TypeError(
                f"Tokenizer: vocab must be a list of words, got the string {V.describe(vocab)} (which "
                "would make a vocabulary of its characters); use Tokenizer.from_texts([text])"
            )
        try:
            words = list(vocab)
        except TypeError:
            raise TypeError(f"Tokenizer: vocab must be an iterable of words, got {V.describe(vocab)}") from None
        bad = [w for w in words if not isinstance(w, str)]
        if bad:
            raise TypeError(f"Tokenizer: every word of vocab must be a str, got {V.describe(bad[0])}")
        if unk is not None and not isinstance(unk, str):
            raise TypeError(f"Tokenizer: unk must be a str or None, got {V.describe(unk)}")
        self.vocab = list(dict.fromkeys(words))
        if unk is not None and unk not in self.vocab:
            self.vocab.append(unk)
        if not self.vocab:
            raise ValueError("Tokenizer: vocab must hold at least one word (or give unk)")
        self.unk = unk
        self.stoi = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], extra: Iterable[str] = (), unk: str | None = None) -> Tokenizer:
        """Vocabulary = ``extra`` then every word of ``texts`` in order of first appearance."""
        who = "Tokenizer.from_texts"
        texts = V.words(who, "texts", texts, what="texts", item="text", hint="; pass [text]")
        words = V.words(who, "extra", extra, hint="; pass a list, e.g. ['<pad>']")
        for t in texts:
            words.extend(cls.split(t))
        return cls(words, unk=unk)

    @staticmethod
    def split(text: str) -> list[str]:
        """Lowercase ``text`` and cut it into words, numbers and punctuation marks."""
        if not isinstance(text, str):
            raise TypeError(f"Tokenizer.split: text must be a str, got {V.describe(text)}")
        return _WORD.findall(text.lower())

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str | list[str]) -> list[int]:
        """A str (lowercased and split) or a list of words -> their ids. A listed word is looked up
        as given and, if the vocabulary lacks it, in lowercase, as the words of a str are, so
        ``encode(["The"]) == encode("The")``."""
        if not isinstance(text, (str, list, tuple)):
            raise TypeError(f"Tokenizer.encode: text must be a str or a list of words, got {V.describe(text)}")
        if isinstance(text, str):
            words = self.split(text)
        else:
            words = [self._listed(w) for w in text]
        ids = []
        for w in words:
            if w in self.stoi:
                ids.append(self.stoi[w])
            elif self.unk is not None:
                ids.append(self.stoi[self.unk])
            else:
                raise KeyError(f"Tokenizer: {w!r} is not in the vocabulary of {len(self)} words")
        return ids

    def _listed(self, word) -> str:
        """A word of a list given to encode: itself when the vocabulary has it, else its lowercase
        form when the vocabulary has that (a str's words are lowercased too), else itself (unknown)."""
        if not isinstance(word, str):
            raise TypeError(f"Tokenizer.encode: every word of text must be a str, got {V.describe(word)}")
        if word in self.stoi:
            return word
        lower = word.lower()
        return lower if lower in self.stoi else word

    def unknown(self, words: Iterable[str]) -> list[str]:
        """The words of a list (of str) that are not in the vocabulary, looked up as ``encode``
        looks up a listed word (as given, else in lowercase)."""
        return [w for w in words if self._listed(w) not in self.stoi]

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids (a list, or a 1-D tensor) -> the words joined by spaces."""
        return " ".join(self._words("Tokenizer.decode", ids))

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Token ids -> the list of their words."""
        return self._words("Tokenizer.tokens", ids)

    def _words(self, who: str, ids) -> list[str]:
        if hasattr(ids, "tolist"):  # a tensor or an array
            if getattr(ids, "ndim", 1) != 1:
                raise ValueError(f"{who}: ids must be 1-D, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        if isinstance(ids, str):
            raise TypeError(f"{who}: ids must be a list of ints, got the string {V.describe(ids)}")
        if not hasattr(ids, "__iter__"):
            raise TypeError(f"{who}: ids must be a list of ints or a 1-D tensor, got {V.describe(ids)}")
        out = []
        for i in ids:
            if isinstance(i, bool):
                raise TypeError(f"{who}: every id must be an int, got {i!r}")
            try:
                j = operator.index(i)
            except TypeError:
                raise TypeError(f"{who}: every id must be an int, got {V.describe(i)}") from None
            if not 0 <= j < len(self.vocab):
                raise ValueError(f"{who}: every id must lie in [0, {len(self.vocab)}) (the vocabulary), got {j}")
            out.append(self.vocab[j])
        return out
