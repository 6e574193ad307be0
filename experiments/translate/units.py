"""How a sentence becomes ids and back: whole words, or subword pieces (sentencepiece).

Both kinds share one interface, so the model, the batches and the decoders never ask which:
``encode(sentence, eos=False) -> ids``, ``decode(ids) -> sentence``, ``pieces(ids) -> [str]``
(for attention maps), ``len()``, ``save(workdir, side)`` and ``load(workdir, side)``. Ids 0-3
are ``<pad>``, ``<unk>``, ``<bos>``, ``<eos>`` in both, as in `jaxrnn.text.Vocabulary`.

Turkish is lower-cased with the Turkish rules and its punctuation split off before either
kind sees it; English keeps its case. Words seen fewer than ``min_freq`` times in training
are ``<unk>``; subword pieces spell every word, so a Turkish suffix the model has seen on
other stems is still read.
"""

import io
import os

import numpy as np
import sentencepiece

from experiments.datasets import DataError
from experiments.translate import data
from jaxrnn import text

KINDS = ("word", "subword")
LANGUAGES = ("tr", "en")


def _prepared(sentence: str, language: str) -> str:
    """What the subword model reads: Turkish lower-cased and split like the words; English
    as it is (sentencepiece keeps its spaces, so decoding gives the sentence back)."""
    return " ".join(data.turkish_tokens(sentence)) if language == "tr" else sentence


class Words:
    """Whole words: a `jaxrnn.text.Vocabulary` over the tokens of `experiments.translate.data`.

    Example:
      >>> from experiments.translate.units import Words
      >>> words = Words.build(["Tom is here.", "Tom is not here."], "en", min_freq=1)
      >>> words.decode(words.encode("Tom is here.", eos=True))
      'Tom is here.'
    """

    kind = "word"

    def __init__(self, vocab: text.Vocabulary, language: str):
        self.vocab, self.language = vocab, language

    @classmethod
    def build(cls, sentences: list[str], language: str, min_freq: int) -> "Words":
        tokens = [cls._tokens(s, language) for s in sentences]
        return cls(text.Vocabulary.build(tokens, min_freq=min_freq), language)

    @staticmethod
    def _tokens(sentence: str, language: str) -> list[str]:
        return data.turkish_tokens(sentence) if language == "tr" else data.english_tokens(sentence)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, sentence: str, eos: bool = False) -> np.ndarray:
        return self.vocab.encode(self._tokens(sentence, self.language), eos=eos)

    def decode(self, ids) -> str:
        return data.detokenize(self.vocab.decode(ids))

    def pieces(self, ids) -> list[str]:
        return self.vocab.decode(ids, strip_special=False)

    def save(self, workdir: str, side: str) -> None:
        self.vocab.save(os.path.join(workdir, f"{side}_vocab.json"))

    @classmethod
    def load(cls, workdir: str, side: str, language: str) -> "Words":
        return cls(text.Vocabulary.load(os.path.join(workdir, f"{side}_vocab.json")), language)


class Subwords:
    """Subword pieces of a sentencepiece unigram model trained on the training sentences.

    Example:
      >>> from experiments.translate.units import Subwords
      >>> pieces = Subwords.train(["Tom is here.", "Tom is not here."] * 20, "en", size=30)
      >>> pieces.decode(pieces.encode("Tom is not here.", eos=True))
      'Tom is not here.'
    """

    kind = "subword"

    def __init__(self, model: bytes, language: str):
        self.model, self.language = model, language
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=model)

    @classmethod
    def train(cls, sentences: list[str], language: str, size: int) -> "Subwords":
        """A unigram model of about ``size`` pieces (fewer when the sentences support fewer).

        One thread and a fixed seed sentence order: the same sentences give the same model.
        """
        model = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter([_prepared(s, language) for s in sentences]),
            model_writer=model,
            vocab_size=size,
            hard_vocab_limit=False,  # tiny training sets (tests) get what they support
            model_type="unigram",
            character_coverage=1.0,  # every Turkish letter is a piece: no <unk> from ç, ğ, ş
            pad_id=text.Vocabulary.pad_id,
            unk_id=text.Vocabulary.unk_id,
            bos_id=text.Vocabulary.bos_id,
            eos_id=text.Vocabulary.eos_id,
            num_threads=1,
            minloglevel=2,
        )
        return cls(model.getvalue(), language)

    def __len__(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, sentence: str, eos: bool = False) -> np.ndarray:
        ids = self.processor.encode(_prepared(sentence, self.language))
        return np.asarray(ids + [text.Vocabulary.eos_id] * eos, np.int32)

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        if text.Vocabulary.eos_id in ids:
            ids = ids[: ids.index(text.Vocabulary.eos_id)]
        specials = (text.Vocabulary.pad_id, text.Vocabulary.bos_id)
        return self.processor.decode([i for i in ids if i not in specials])

    def pieces(self, ids) -> list[str]:
        return [self.processor.id_to_piece(int(i)) for i in ids]

    def unk_count(self, sentence: str) -> int:
        """How many pieces of ``sentence`` are ``<unk>`` (characters never seen in training)."""
        return int(np.sum(self.encode(sentence) == text.Vocabulary.unk_id))

    def save(self, workdir: str, side: str) -> None:
        path = os.path.join(workdir, f"{side}.spm")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(self.model)
        os.replace(tmp, path)

    @classmethod
    def load(cls, workdir: str, side: str, language: str) -> "Subwords":
        path = os.path.join(workdir, f"{side}.spm")
        try:
            with open(path, "rb") as f:
                model = f.read()
        except FileNotFoundError:
            raise DataError(
                f"{path} is missing: the run's {side} subword model, written when training "
                "starts; train again in this workdir or use another"
            ) from None
        try:
            return cls(model, language)
        except RuntimeError as error:  # sentencepiece's message for a damaged model
            raise DataError(f"{path}: not a sentencepiece model ({error})") from None


def build(kind: str, sentences: list[str], language: str, *, size: int, min_freq: int):
    """Words or subwords of ``kind`` from the training ``sentences``."""
    if kind == "word":
        return Words.build(sentences, language, min_freq)
    return Subwords.train(sentences, language, size)


def load(kind: str, workdir: str, side: str, language: str):
    """The units a run saved for ``side`` (``"source"`` or ``"target"``)."""
    return (Words if kind == "word" else Subwords).load(workdir, side, language)
