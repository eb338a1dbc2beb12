"""Text search over the style library, in Chinese and English, with a shipped synonym lexicon.

Why no text model: nothing can be downloaded where this runs, and a merchandiser's
query ("复古", "vintage look") is a few words against a few hundred styles that
were described by people.  So the search is lexical, done properly:

* **tokenizing** -- text is NFKC-normalised and lower-cased, split into runs of
  CJK and non-CJK characters; CJK runs are segmented by ``jieba`` (each lexicon
  term is added to its dictionary so that "工业风" stays one word), other runs
  into words reduced by the Snowball English stemmer ("vintage" and "vintages"
  meet).  Stop words ("look", "style", "的", "风格") and single CJK characters
  carry no meaning alone and are dropped;
* **synonyms** -- ``synonyms.tsv`` (shipped in this package) groups terms that
  mean one look across languages (复古 ≈ 怀旧 ≈ retro ≈ vintage); a query word
  matches a style that has any term of its group, at :data:`SYNONYM_WEIGHT` of
  an exact match;
* **scoring** -- per query word, its best match over the style's fields (name
  weighs more than tags, tags more than the description), times the word's
  inverse document frequency in the library (a word every style has ranks
  nothing), summed over the query words;
* **more like this** -- the second signal: styles whose style code is close
  (cosine of library-centred codes) to the styles the words matched gain
  :data:`SIMILARITY_WEIGHT` x similarity x the matched style's share of the text
  score, and styles with no word of their own but a code at least
  :data:`SIMILAR_MIN` alike are listed after the word matches, saying whom they
  look like.  Nothing matched in words: nothing is listed (no guessing).

Every result says *why* it matched (which field, which term, through which
synonym or which similar style).
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from data.styles.library import StyleEntry, StyleLibrary

#: Field weights: a word in the name says more than in a tag, a tag more than the description.
FIELD_WEIGHTS: dict[str, float] = {"name": 3.0, "tags": 2.0, "description": 1.0}
#: A synonym match counts this much of an exact match.
SYNONYM_WEIGHT = 0.8
#: Weight of the "more like this" signal relative to the (normalised) text score.
SIMILARITY_WEIGHT = 0.3
#: Least centred-code cosine for a style with no words of its own to be listed.
SIMILAR_MIN = 0.6
#: Least cosine for a word match to also say whom it looks like (weaker is no reason).
SIMILAR_NOTE = 0.3

STOP_WORDS = frozenset({
    "a", "an", "the", "and", "or", "of", "with", "for", "in", "on", "to", "like", "look",
    "looks", "style", "styles", "styled", "feel", "vibe", "vibes", "kind", "type", "some",
    "的", "风格", "风", "感", "款", "和", "与", "或", "的感觉", "样式", "感觉", "一些", "类",
})
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUNS = re.compile(f"([{_CJK}]+)|([^{_CJK}]+)")
_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=1)
def _jieba() -> Any:
    """jieba, quiet, with every CJK lexicon term in its dictionary (loaded once)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    for group in _raw_lexicon():
        for term in group:
            if re.fullmatch(f"[{_CJK}]+", term):
                jieba.add_word(term, freq=100_000)
    return jieba


def tokenize(text: str) -> list[str]:
    """Meaningful tokens of ``text``: jieba words for Chinese, Snowball stems for other words."""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    out: list[str] = []
    for cjk, other in _RUNS.findall(text):
        if cjk:
            words = [w.strip() for w in _jieba().lcut(cjk) if w.strip()]
            out.extend(w for w in words if len(w) > 1 and w not in STOP_WORDS)
        else:
            for w in _WORD.findall(other):
                if w in STOP_WORDS:
                    continue
                parts = [w, *w.split("-")] if "-" in w else [w]
                out.extend(_stemmer().stemWord(p) for p in parts if p not in STOP_WORDS)
    return out


@lru_cache(maxsize=1)
def _raw_lexicon() -> tuple[tuple[str, ...], ...]:
    """The shipped synonym groups (``synonyms.tsv``: one group a line, TAB-separated)."""
    text = resources.files("data.styles").joinpath("synonyms.tsv").read_text(encoding="utf-8")
    groups = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        groups.append(tuple(t.strip() for t in line.split("\t") if t.strip()))
    return tuple(groups)


@dataclass(frozen=True)
class Lexicon:
    """Synonym groups as token phrases: ``concepts[i]`` is the set of phrases of group ``i``."""

    concepts: tuple[frozenset[tuple[str, ...]], ...]
    labels: tuple[str, ...]  # the group's first term, for the "why"
    by_token: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @classmethod
    def shipped(cls) -> Lexicon:
        """The lexicon shipped with the package."""
        return _shipped()

    def groups_of(self, phrase: tuple[str, ...]) -> tuple[int, ...]:
        """Groups that contain ``phrase`` exactly."""
        if len(phrase) == 1:
            return self.by_token.get(phrase[0], ())
        return tuple(i for i, c in enumerate(self.concepts) if phrase in c)


@lru_cache(maxsize=1)
def _shipped() -> Lexicon:
    concepts, labels = [], []
    by_token: dict[str, list[int]] = {}
    for i, group in enumerate(_raw_lexicon()):
        phrases = frozenset(p for p in (tuple(tokenize(t)) for t in group) if p)
        concepts.append(phrases)
        labels.append(group[0])
        for p in phrases:
            if len(p) == 1:
                by_token.setdefault(p[0], []).append(i)
    return Lexicon(tuple(concepts), tuple(labels), {k: tuple(v) for k, v in by_token.items()})


def _surface(query: str) -> dict[str, str]:
    """Stem -> the word as the user wrote it (so that a reason quotes "vintage", not "vintag")."""
    out: dict[str, str] = {}
    text = unicodedata.normalize("NFKC", str(query)).lower()
    for _, other in _RUNS.findall(text):
        for w in _WORD.findall(other or ""):
            for part in [w, *w.split("-")]:
                out.setdefault(_stemmer().stemWord(part), part)
    return out


@dataclass(frozen=True)
class SearchHit:
    """One ranked style: ids, scores and the reasons it matched."""

    style_id: str
    name: str
    score: float
    text_score: float
    similarity: float
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``stylerec styles search --json``)."""
        return {"style_id": self.style_id, "name": self.name, "score": round(self.score, 4),
                "text_score": round(self.text_score, 4),
                "similarity": round(self.similarity, 4), "reasons": list(self.reasons)}


def _contains(tokens: Sequence[str], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(tuple(tokens[i:i + n]) == phrase for i in range(len(tokens) - n + 1))


class StyleSearch:
    """A search index over one library; build once, query many times.

    ``codes`` (style id -> style code) enables the "more like this" signal;
    styles without a code simply do not take part in it.
    """

    def __init__(self, library: StyleLibrary, codes: Mapping[str, Any] | None = None,
                 lexicon: Lexicon | None = None) -> None:
        self.library = library
        self.lexicon = lexicon or Lexicon.shipped()
        self.entries: list[StyleEntry] = list(library.entries)
        self.fields: list[dict[str, list[list[str]]]] = [self._fields(e) for e in self.entries]
        self.groups: list[dict[str, set[int]]] = [
            {f: self._groups_in(units) for f, units in fl.items()} for fl in self.fields]
        n = max(len(self.entries), 1)
        self._n = n
        self._code_ids: list[str] = []
        self._unit: np.ndarray | None = None
        if codes:
            ids = [e.style_id for e in self.entries if e.style_id in codes]
            if len(ids) >= 2:
                x = np.stack([np.asarray(codes[s], np.float64).ravel() for s in ids])
                x = x - x.mean(axis=0)
                norms = np.linalg.norm(x, axis=1, keepdims=True)
                self._unit = x / np.where(norms > 0, norms, 1.0)
                self._code_ids = ids

    @staticmethod
    def _fields(e: StyleEntry) -> dict[str, list[list[str]]]:
        """Token lists per field; tags are kept apart so that a phrase never spans two tags."""
        return {"name": [tokenize(e.name or e.style_id)], "tags": [tokenize(t) for t in e.tags],
                "description": [tokenize(e.description)]}

    def _groups_in(self, units: Iterable[Sequence[str]]) -> set[int]:
        out: set[int] = set()
        for toks in units:
            for tok in toks:
                out.update(self.lexicon.by_token.get(tok, ()))
            for i, concept in enumerate(self.lexicon.concepts):
                if any(len(p) > 1 and _contains(toks, p) for p in concept):
                    out.add(i)
        return out

    @property
    def has_codes(self) -> bool:
        """Whether the "more like this" signal is available (codes for two styles or more)."""
        return self._unit is not None

    def _idf(self, hits: int) -> float:
        return math.log(1.0 + self._n / max(hits, 1))

    def query_terms(self, query: str) -> list[tuple[str, tuple[int, ...]]]:
        """The query's tokens, each with the synonym groups it belongs to (phrases first)."""
        toks = tokenize(query)
        terms: list[tuple[str, tuple[int, ...]]] = []
        used = [False] * len(toks)
        for i, concept in enumerate(self.lexicon.concepts):  # multi-word lexicon phrases
            for p in concept:
                if len(p) > 1:
                    for j in range(len(toks) - len(p) + 1):
                        if tuple(toks[j:j + len(p)]) == p and not any(used[j:j + len(p)]):
                            terms.append((" ".join(p), (i,)))
                            used[j:j + len(p)] = [True] * len(p)
        for j, t in enumerate(toks):
            if not used[j]:
                terms.append((t, self.lexicon.groups_of((t,))))
        return terms

    def query_words(self, query: str) -> list[str]:
        """The query's meaningful words as the user wrote them (what was searched for)."""
        said = _surface(query)
        return [" ".join(said.get(t, t) for t in stem.split(" "))
                for stem, _ in self.query_terms(query)]

    def search(self, query: str, k: int = 10) -> list[SearchHit]:
        """Ranked styles for ``query`` (at most ``k``); empty when no word matches any style."""
        terms = self.query_terms(query)
        if not terms or not self.entries:
            return []
        text = np.zeros(len(self.entries))
        reasons: list[list[str]] = [[] for _ in self.entries]
        said = _surface(query)
        for stem, groups in terms:
            phrase = tuple(stem.split(" "))
            term = " ".join(said.get(t, t) for t in phrase)
            exact = [self._match_exact(fl, phrase) for fl in self.fields]
            syn = [self._match_synonym(g, groups) for g in self.groups]
            df = sum(1 for a, b in zip(exact, syn, strict=True) if a or b)
            if df == 0:
                continue
            idf = self._idf(df)
            for s in range(len(self.entries)):
                best, why = 0.0, ""
                if exact[s]:
                    best, why = FIELD_WEIGHTS[exact[s]], f"{exact[s]} has '{term}'"
                if syn[s] and FIELD_WEIGHTS[syn[s][0]] * SYNONYM_WEIGHT > best:
                    f, g = syn[s]
                    best = FIELD_WEIGHTS[f] * SYNONYM_WEIGHT
                    why = (f"{f} has a synonym of '{term}' "
                           f"({self._field_terms(s, f, g)} ≈ {self.lexicon.labels[g]})")
                if best > 0:
                    text[s] += best * idf
                    reasons[s].append(why)
        if not text.any():
            return []
        similarity = self._similarity(text)
        top = text.max()
        score = text / top + SIMILARITY_WEIGHT * similarity[:, 0]
        hits = []
        for s in range(len(self.entries)):
            sim, src, cos = similarity[s]
            why = list(reasons[s])
            if text[s] == 0 and sim < SIMILAR_MIN:
                continue
            if sim > 0 and int(src) != s and cos >= SIMILAR_NOTE:
                why.append(f"looks like {self.entries[int(src)].style_id} "
                           f"({self.entries[int(src)].name}; code similarity {cos:.2f})")
            hits.append(SearchHit(self.entries[s].style_id, self.entries[s].name,
                                  float(score[s]) if text[s] else float(SIMILARITY_WEIGHT * sim),
                                  float(text[s]), float(sim), tuple(why)))
        worded = sorted((h for h in hits if h.text_score > 0), key=lambda h: -h.score)
        alike = sorted((h for h in hits if h.text_score == 0), key=lambda h: -h.score)
        return (worded + alike)[:k]

    def _match_exact(self, fields: dict[str, list[list[str]]], phrase: tuple[str, ...]) -> str:
        for f in FIELD_WEIGHTS:  # heaviest field first
            if any(_contains(toks, phrase) for toks in fields[f]):
                return f
        return ""

    @staticmethod
    def _match_synonym(groups: dict[str, set[int]], wanted: tuple[int, ...]
                       ) -> tuple[str, int] | None:
        for f in FIELD_WEIGHTS:
            for g in wanted:
                if g in groups[f]:
                    return f, g
        return None

    def _field_terms(self, s: int, f: str, g: int) -> str:
        """The style's own words in field ``f`` that belong to group ``g`` (for the why)."""
        e = self.entries[s]
        raw = {"name": [e.name], "tags": list(e.tags), "description": [e.description]}[f]
        concept = self.lexicon.concepts[g]
        found = []
        for text in raw:
            toks = tokenize(text)
            if any(_contains(toks, p) for p in concept):
                found.append(text if f != "description" else
                             next(" ".join(p) for p in concept if _contains(toks, p)))
        return "'" + "', '".join(dict.fromkeys(found)) + "'" if found else "?"

    def _similarity(self, text: np.ndarray) -> np.ndarray:
        """Per style: (bonus, index of the matched style it is most like, raw code cosine).

        The bonus is the cosine weighted by that style's share of the text score (for a
        style with words of its own) or the plain cosine (for one without).
        """
        out = np.zeros((len(self.entries), 3))
        if self._unit is None:
            return out
        pos = {s: n for n, s in enumerate(self._code_ids)}
        rows = [pos.get(e.style_id, -1) for e in self.entries]
        matched = [s for s in range(len(self.entries)) if text[s] > 0 and rows[s] >= 0]
        if not matched:
            return out
        share = text[matched] / text[matched].max()
        for s in range(len(self.entries)):
            if rows[s] < 0:
                continue
            others = [(m, w) for m, w in zip(matched, share, strict=True) if m != s]
            if not others:
                continue
            cos = np.array([float(self._unit[rows[s]] @ self._unit[rows[m]]) for m, _ in others])
            weighted = cos * np.array([w for _, w in others])
            j = int(np.argmax(weighted))
            if cos[j] > 0:
                out[s] = (float(cos[j]) if text[s] == 0 else float(weighted[j]), others[j][0],
                          float(cos[j]))
        return out
