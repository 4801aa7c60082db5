"""Turn text into word counts: the third step for every page, pure and without I/O.

The word rules (docs/how-it-works.md, "How words are counted"): NFC-normalise, turn U+2019
into an apostrophe, split with an NLTK tokenizer into runs of letters or digits that may
hold single apostrophes or hyphens between two such characters, case-fold, and drop tokens
without a letter (2024) or longer than 64 characters (no language has such words; a page of
them would only fill the database). NLTK's English stopwords are stored like any word;
readers choose to leave them out. A page's words are all counted, but only its most frequent
are stored (`most_frequent`), so that one page cannot fill the database.
"""

from __future__ import annotations

import heapq
import logging
import unicodedata
from collections import Counter
from functools import lru_cache
from pathlib import Path

import nltk
from nltk import FreqDist, redos
from nltk.corpus import stopwords
from nltk.tokenize import RegexpTokenizer

log = logging.getLogger(__name__)

# [^\W_] is "a letter or a digit" in any script: \w without the underscore.
WORD_PATTERN = r"[^\W_]+(?:['-][^\W_]+)*"
MAX_WORD_LENGTH = 64  # characters, once case-folded; a longer token is not a word


class WordTokenizer(RegexpTokenizer):
    """NLTK's RegexpTokenizer for WORD_PATTERN, matched without NLTK's ReDoS timeout.

    NLTK (3.10) runs a tokenizer's pattern with the `regex` engine under a wall-clock
    timeout, a guard against caller-supplied patterns that backtrack without end. This
    pattern cannot: each repetition must begin with its own ' or -. The same engine
    without the timeout splits a page in much less time (docs/performance.md, "Today's figures").
    """

    def __init__(self) -> None:
        super().__init__(WORD_PATTERN)

    def _check_regexp(self) -> None:
        if self._regexp is None:
            self._regexp = redos.compile(self._pattern, self._flags, timeout=None)


TOKENIZER = WordTokenizer()
SHIPPED_NLTK_DATA = Path(__file__).parent / "nltk_data"


def tokenize(text: str) -> list[str]:
    """Split text into words, case-folded, by the word rules (docs/how-it-works.md)."""
    words = (token.casefold() for token in _tokens(text) if _has_letter(token))
    return [word for word in words if len(word) <= MAX_WORD_LENGTH]


def _tokens(text: str) -> list[str]:
    """Split text into NLTK tokens as written: runs of letters or digits, not yet checked."""
    # U+00AD, the soft hyphen, is invisible: "co\u00adop" reads as one word.
    text = unicodedata.normalize("NFC", text).replace("\u2019", "'").replace("\u00ad", "")
    return TOKENIZER.tokenize(text)


def _has_letter(token: str) -> bool:
    return token.isalpha() or any(c.isalpha() for c in token)  # most words: the first test


def count_words(text: str) -> FreqDist:
    """Count the words of a text: word_count is its N(), unique_words its B()."""
    # Count the tokens as written first (Counter counts in C), then check and case-fold
    # each different token once: a page's 2,500 tokens are a few hundred different ones.
    # The same words and counts as FreqDist(tokenize(text)) (tests/unit/test_words.py).
    counts: Counter[str] = Counter()
    for token, count in Counter(_tokens(text)).items():
        if _has_letter(token):
            word = token.casefold()  # may grow ("ß" is "ss"): measured after
            if len(word) <= MAX_WORD_LENGTH:
                counts[word] += count
    return FreqDist(counts)


def most_frequent(counts: dict[str, int], limit: int) -> dict[str, int]:
    """Return the `limit` most frequent words of a page (ties by word, in order); all of
    them, as they are, when there are no more than that (most pages: no cost)."""
    if len(counts) <= limit:
        return counts
    return dict(heapq.nsmallest(limit, counts.items(), key=lambda item: (-item[1], item[0])))


@lru_cache(maxsize=1)
def english_stopwords() -> frozenset[str]:
    """Return NLTK's English stopword list: NLTK's data if installed, else the shipped copy."""
    # NLTK searches its data path in order, so a downloaded corpus wins over the shipped one
    # (NLTK only reads corpora from folders on that path).
    if str(SHIPPED_NLTK_DATA) not in nltk.data.path:
        nltk.data.path.append(str(SHIPPED_NLTK_DATA))
    words = stopwords.words("english")
    log.debug("English stopwords: %d words from %s", len(words), stopwords.root)
    return frozenset(words)
