"""Word rules 3 to 5 (docs/how-it-works.md, "How words are counted"): how text becomes
counted words (job_tasks/reading/words.py)."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.tokenize import RegexpTokenizer

from job_tasks.reading.words import (
    TOKENIZER,
    WORD_PATTERN,
    count_words,
    english_stopwords,
    most_frequent,
    tokenize,
)


def test_text_splits_into_case_folded_words():
    assert tokenize("The Quick brown FOX") == ["the", "quick", "brown", "fox"]


def test_punctuation_and_spaces_separate_words():
    assert tokenize("Hello, world! (Again)... yes?") == ["hello", "world", "again", "yes"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("well-known", ["well-known"], id="hyphen-between-letters"),
        pytest.param("don't", ["don't"], id="apostrophe-between-letters"),
        pytest.param("l'été", ["l'été"], id="apostrophe-before-accented-letter"),
        pytest.param("o'brien-smith's", ["o'brien-smith's"], id="several-joiners"),
        pytest.param("covid-19", ["covid-19"], id="hyphen-before-digits"),
        pytest.param("--x--", ["x"], id="hyphens-at-the-edges-dropped"),
        pytest.param("'quoted'", ["quoted"], id="quotes-around-a-word-dropped"),
        pytest.param("a''b", ["a", "b"], id="double-apostrophe-splits"),
        pytest.param("a--b", ["a", "b"], id="double-hyphen-splits"),
        pytest.param("end- start", ["end", "start"], id="trailing-hyphen-dropped"),
    ],
)
def test_hyphens_and_apostrophes_join_only_between_letters_or_digits(text, words):
    assert tokenize(text) == words


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("mp3", ["mp3"], id="letters-and-digits"),
        pytest.param("1st k8s", ["1st", "k8s"], id="digits-first"),
        pytest.param("2024", [], id="year"),
        pytest.param("3-4 12,5 7.0", [], id="numbers-with-punctuation"),
    ],
)
def test_a_token_needs_a_letter_to_be_a_word(text, words):
    assert tokenize(text) == words


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("a" * 64, ["a" * 64], id="64-letters"),
        pytest.param("a" * 65, [], id="65-letters"),
        pytest.param("x " + "b" * 5000 + " y", ["x", "y"], id="5000-letters"),
        pytest.param("-".join(["ab"] * 30), [], id="hyphenated-89"),
        pytest.param("ß" * 33, [], id="66-once-case-folded"),  # 33 characters, "ss" each
        pytest.param("ß" * 32, ["ss" * 32], id="64-once-case-folded"),
    ],
)
def test_a_token_longer_than_64_characters_is_not_a_word(text, words):
    assert tokenize(text) == words
    assert dict(count_words(text)) == dict(Counter(words))


def test_the_most_frequent_words_are_kept_ties_by_word():
    counts = {"b": 2, "a": 2, "c": 5, "d": 1, "e": 2}

    assert most_frequent(counts, 3) == {"c": 5, "a": 2, "b": 2}
    assert list(most_frequent(counts, 3)) == ["c", "a", "b"]


def test_a_page_with_no_more_words_than_the_limit_keeps_them_all_as_they_are():
    counts = {"one": 1, "two": 2}

    assert most_frequent(counts, 2) is counts


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("STRASSE Straße", ["strasse", "strasse"], id="sharp-s-folds-to-ss"),
        pytest.param("ÉTÉ", ["été"], id="accented-capitals"),
        pytest.param("ΑΘΉΝΑ", ["αθήνα"], id="greek"),
        pytest.param("МОСКВА", ["москва"], id="cyrillic"),  # noqa: RUF001 (Cyrillic on purpose)
    ],
)
def test_words_are_case_folded_in_every_script(text, words):
    assert tokenize(text) == words


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("東京", id="japanese"),
        pytest.param("ελληνικά", id="greek"),
        pytest.param("русский", id="cyrillic"),
        pytest.param("العربية", id="arabic"),
        pytest.param("हिन्दी", id="devanagari-with-vowel-signs"),
    ],
)
def test_words_in_non_latin_scripts_are_kept_whole(text):
    assert tokenize(text) == [text]


def test_decomposed_and_composed_accents_are_the_same_word():
    decomposed = "cafe\u0301"  # "e" followed by a combining acute accent
    composed = "caf\u00e9"

    assert tokenize(decomposed) == tokenize(composed) == ["café"]


def test_typographic_apostrophe_counts_as_an_apostrophe():
    assert tokenize("don\u2019t") == tokenize("don't") == ["don't"]


def test_underscores_split_words():
    assert tokenize("snake_case __init__") == ["snake", "case", "init"]


def test_replacement_character_is_not_a_word():
    assert tokenize("caf\ufffd \ufffd") == ["caf"]


def test_word_count_is_every_word_and_unique_words_the_distinct_ones():
    counts = count_words("The cat and the hat. THE END, 2024!")

    assert counts.N() == 7  # word_count: "2024" is not a word
    assert counts.B() == 5  # unique_words: the, cat, and, hat, end
    assert counts["the"] == 3


def test_empty_text_has_no_words():
    counts = count_words("  2024 -- !!! ")

    assert counts.N() == 0
    assert counts.B() == 0


def test_stopwords_are_nltk_english_list():
    stopwords = english_stopwords()

    assert len(stopwords) == 198
    assert {"the", "and", "don't", "she'll"} <= stopwords
    assert "crawler" not in stopwords


def test_stopwords_are_still_counted():
    counts = count_words("the crawler and the queue")

    assert counts["the"] == 2
    assert counts["and"] == 1
    assert counts.N() == 5


def test_soft_hyphen_does_not_split_a_word():
    assert tokenize("co\u00adoperate") == ["cooperate"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_the_tokenizer_splits_as_nltks_own_regexp_tokenizer(text):
    # WordTokenizer only leaves out NLTK's match timeout; the words must be the same.
    assert TOKENIZER.tokenize(text) == RegexpTokenizer(WORD_PATTERN).tokenize(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_counting_matches_tokenizing_and_no_word_holds_a_space(text):
    # count_words checks each different token once; the counts must be tokenize's. Words
    # travel to PostgreSQL space-separated (store.FINISH_PAGE), so none may hold a space.
    counts = count_words(text)

    assert dict(counts) == dict(Counter(tokenize(text)))
    assert not any(" " in word for word in counts)
