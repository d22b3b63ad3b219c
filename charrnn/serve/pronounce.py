"""The Pronounce tab's work, without Gradio: the words of a text through a seq2seq (G2P) model, N-best.

Every word of a request is decoded in one batched search; given the service's batcher, its steps are
shared with the other requests decoding with the same model at that moment (serve/batcher.py). For each
word it returns the model's N best pronunciations with their probabilities, in ARPAbet and IPA; the
dictionary's pronunciations beside them (scored by the model too) when the word is in the CMU dictionary;
and the attention weights of the best one, letters x phonemes, for the picture.
"""

from __future__ import annotations

import math
import re
import time
import weakref
from contextlib import nullcontext

from charrnn.errors import CharRNNError
from charrnn.seq2seq.cmudict import Lexicon, arpabet_to_ipa, is_phoneme
from charrnn.seq2seq.data import detokenize
from charrnn.seq2seq.translate import Translator
from charrnn.serve import limits
from charrnn.serve.batcher import Batcher
from charrnn.serve.registry import Registry

MAX_NOTES = 20  # lines saying what was read otherwise or left out
WORD = re.compile(r"[^\s\-\u2010-\u2015/]+")  # words are separated by spaces, hyphens, dashes and slashes


def words_of(text: str, translator: Translator) -> tuple[list[str], list[str]]:
    """The distinct words of a text as the model reads them (seq2seq/normalize.py: the CLI's reading), in
    order, and what was read otherwise or left out, a line for each word concerned."""
    words, notes = [], []
    for found in WORD.findall(str(text)[:limits.MAX_PRONOUNCE_TEXT]):
        try:
            reading = translator.read(found, unknown="skip")
        except CharRNNError as e:  # digits: the word is left out, and why is said
            notes.append(f"left out {e.problem}")
            continue
        notes += [f"{found}: {note}" for note in reading.notes]
        if reading.tokens:
            words.append(detokenize(reading.tokens, translator.source_tokens)[:limits.MAX_WORD])
    return list(dict.fromkeys(words)), list(dict.fromkeys(notes))[:MAX_NOTES]


def ipa(phonemes: tuple[str, ...]) -> str:
    """IPA for ARPAbet phonemes; "" for outputs that are not ARPAbet (a model trained on something else)."""
    return arpabet_to_ipa(phonemes) if phonemes and all(map(is_phoneme, phonemes)) else ""


class Pronouncer:
    """Pronunciations from the registry's seq2seq models, and the dictionary's beside them."""

    def __init__(self, registry: Registry, lexicon: Lexicon | None = None, batcher: Batcher | None = None):
        """With a batcher (the service's), concurrent requests decode in shared steps; without, each alone."""
        self.registry, self.batcher = registry, batcher
        self._lexicon = lexicon
        self._translators: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def lexicon(self) -> Lexicon | None:
        """The CMU dictionary (read once), or None where the cmudict package is missing."""
        if self._lexicon is None:
            try:
                self._lexicon = Lexicon.load()
            except CharRNNError:
                return None
        return self._lexicon

    def translator(self, name: str) -> Translator:
        loaded = self.registry.load(limits.clip(name, limits.MAX_NAME_TEXT), kind="seq2seq")
        if loaded.model not in self._translators:
            self._translators[loaded.model] = Translator(loaded.model, loaded.config)
        return self._translators[loaded.model]

    def pronounce(self, model: str, text: str, beam: int = limits.PRONOUNCE_BEAM.default,
                  num: int = limits.PRONOUNCE_NUM.default) -> dict:
        """{"words": [{"word", "outputs": [{"arpabet", "ipa", "prob", "logprob"}], "dictionary": [...],
        "attention": {"letters", "phonemes", "weights"}}], "ms", "model"}."""
        t0 = time.perf_counter()
        translator = self.translator(model)
        words, notes = words_of(text, translator)
        words = words[:limits.MAX_WORDS]
        if not words:
            raise CharRNNError("; ".join(["type one or more words", *notes]))
        num = limits.PRONOUNCE_NUM.clamp_int(num)
        beam = max(num, limits.PRONOUNCE_BEAM.clamp_int(beam))
        encoded = translator.begin(words, unknown="skip")  # once, for the search and the scoring pass
        with self.batcher.session(translator.model) if self.batcher else nullcontext() as session:
            found = translator.translate(words, beam, num, unknown="skip", stepper=session, encoded=encoded)
        lexicon = self.lexicon()
        symbols = translator.target_vocab.index  # a pronunciation with other symbols is one the model cannot score
        known = [[p for p in lexicon.lookup(w) if all(t in symbols for t in p)] if lexicon else [] for w in words]
        # One fused call scores the dictionary's pronunciations and draws the best outputs' attention (a best
        # output that is also in the dictionary is one row, not two).
        asked = list(dict.fromkeys([(i, outs[0].tokens) for i, outs in enumerate(found)]
                                   + [(i, pron) for i, prons in enumerate(known) for pron in prons]))
        forced = dict(zip(asked, translator.force([words[i] for i, _ in asked], [p for _, p in asked],
                                                  encoded=encoded, rows=[i for i, _ in asked]), strict=True))
        result = []
        for i, (word, outs, prons) in enumerate(zip(words, found, known, strict=True)):
            dictionary = [self._item(pron, forced[i, pron][0]) for pron in prons]
            in_dictionary = {d["arpabet"] for d in dictionary}
            outputs = [{**self._item(o.tokens, o.logprob), "in_dictionary": " ".join(o.tokens) in in_dictionary}
                       for o in outs]
            weights = forced[i, outs[0].tokens][1]
            attention = {"letters": list(word), "phonemes": [*outs[0].tokens, "</s>"],
                         "weights": [[round(float(x), 4) for x in row] for row in weights]}
            result.append({"word": word, "outputs": outputs, "dictionary": dictionary, "attention": attention})
        return {"words": result, "notes": notes, "model": model, "ms": round((time.perf_counter() - t0) * 1000, 1)}

    @staticmethod
    def _item(tokens: tuple[str, ...], logprob: float) -> dict:
        return {"arpabet": " ".join(tokens), "ipa": ipa(tokens), "prob": round(math.exp(logprob), 5),
                "logprob": round(logprob, 5)}
