"""Word rules 1 and 2 (docs/how-it-works.md, "How words are counted"): from a page's bytes
to the text that is counted."""

import pytest

from job_tasks.fetching.fetch import Response
from job_tasks.page_errors import DecodeError
from job_tasks.reading.text import decode, extract, parse_html
from job_tasks.reading.words import count_words, tokenize

PAGE_URL = "http://example.com/dir/page.html"


def html_response(body: bytes, charset: str | None = None) -> Response:
    return Response(PAGE_URL, 200, "text/html", charset, body)


def words_of(html: str) -> list[str]:
    return tokenize(parse_html(html, PAGE_URL).text)


# Rule 1: which charset decodes the bytes.


def test_http_charset_wins_over_meta_charset():
    body = '<meta charset="windows-1252"><p>café</p>'.encode()

    assert "café" in decode(body, "utf-8", is_html=True)


def test_meta_charset_is_used_when_http_gives_none():
    body = b'<meta charset="windows-1252"><p>caf\xe9</p>'

    assert "café" in decode(body, None, is_html=True)


def test_meta_http_equiv_content_type_is_used_when_http_gives_none():
    body = b'<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"><p>caf\xe9</p>'

    assert "café" in decode(body, None, is_html=True)


def test_undeclared_invalid_utf8_gets_replacement_characters():
    text = decode(b"caf\xe9 au lait", None, is_html=True)

    assert text == "caf\ufffd au lait"
    assert tokenize(text) == ["caf", "au", "lait"]


def test_undeclared_valid_utf8_decodes():
    assert decode("naïve café".encode(), None, is_html=True) == "naïve café"


def test_unknown_http_charset_falls_back_to_meta_charset():
    body = b'<meta charset="windows-1252"><p>caf\xe9</p>'

    assert "café" in decode(body, "no-such-charset", is_html=True)


@pytest.mark.parametrize("label", ["no-such-charset", "", "  "])
def test_unknown_or_empty_charset_falls_back_to_utf8(label):
    assert decode(b"caf\xc3\xa9 caf\xe9", label, is_html=False) == "café caf\ufffd"


@pytest.mark.parametrize("label", ["base64", "hex", "zip", "rot13", "idna", "punycode"])
def test_a_codec_that_is_no_usable_text_encoding_counts_as_unknown(label):
    # Python knows these names, but they are not text encodings or cannot replace bad bytes.
    assert decode(b"caf\xc3\xa9 \xff", label, is_html=False) == "café \ufffd"


@pytest.mark.parametrize(("body", "charset"), [(b"+2AA-", "utf-7"), (b"\\ud800", "unicode_escape")])
def test_a_lone_surrogate_decoded_becomes_a_replacement_character(body, charset):
    # No character: UTF-8 and PostgreSQL cannot hold it.
    assert decode(b"x " + body, charset, is_html=False) == "x \ufffd"


def test_an_unusable_meta_charset_falls_back_to_utf8():
    body = '<meta charset="base64"><p>café</p>'.encode()

    assert "café" in decode(body, None, is_html=True)


def test_meta_charset_is_ignored_for_plain_text():
    body = b'<meta charset="windows-1252"> caf\xe9'

    assert decode(body, None, is_html=False).endswith("caf\ufffd")


def test_utf8_byte_order_mark_is_not_text():
    assert decode(b"\xef\xbb\xbfhello", None, is_html=False) == "hello"
    assert decode(b"\xef\xbb\xbfhello", "utf-8", is_html=False) == "hello"


def test_utf16_with_byte_order_mark_decodes_when_http_says_utf16():
    body = "<p>héllo wörld</p>".encode("utf-16")  # starts with a BOM, full of NUL bytes

    assert decode(body, "utf-16", is_html=True) == "<p>héllo wörld</p>"


@pytest.mark.parametrize("charset", [None, "utf-8", "iso-8859-1"])
def test_binary_data_labelled_as_text_is_a_decode_error(charset):
    body = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"

    with pytest.raises(DecodeError) as info:
        decode(body, charset, is_html=True)

    assert info.value.code == "decode_error"


# Rule 2: which text of a page is counted.


@pytest.mark.parametrize(
    "hidden",
    [
        "<script>var hidden = 1;</script>",
        "<style>p { color: red } .hidden {}</style>",
        "<noscript>hidden</noscript>",
        "<template><p>hidden</p></template>",
        "<svg><text>hidden</text></svg>",
        "<math><mi>hidden</mi></math>",
        "<!-- hidden -->",
    ],
    ids=["script", "style", "noscript", "template", "svg", "math", "comment"],
)
def test_uncounted_elements_are_left_out(hidden):
    assert words_of(f"<body><p>shown</p>{hidden}<p>too</p></body>") == ["shown", "too"]


def test_head_is_left_out():
    html = (
        "<html><head><title>Title</title><meta name='description' content='meta'>"
        "<style>p{}</style><script>head()</script></head><body><p>shown</p></body></html>"
    )

    assert words_of(html) == ["shown"]


def test_text_nodes_are_joined_with_a_space():
    assert words_of("<p>Hello<b>World</b></p>") == ["hello", "world"]
    assert words_of("<div>one</div><div>two</div>") == ["one", "two"]


def test_title_is_stored_but_not_counted():
    document = parse_html(
        "<html><head><title>  My\n  Page </title></head><body><p>body words</p></body></html>",
        PAGE_URL,
    )

    assert document.title == "My Page"
    assert tokenize(document.text) == ["body", "words"]


def test_a_long_title_is_cut_to_200_characters():
    document = parse_html(f"<title>  {'word ' * 20_000}</title><p>body</p>", PAGE_URL)

    assert document.title == ("word " * 40).rstrip()[:200].rstrip()
    assert len(document.title) <= 200
    assert tokenize(document.text) == ["body"]


def test_a_100000_letter_title_keeps_its_first_200():
    assert parse_html(f"<title>{'t' * 100_000}</title>", PAGE_URL).title == "t" * 200


def test_title_entities_are_decoded():
    document = parse_html("<title>Tom &amp; Jerry</title><p>x</p>", PAGE_URL)

    assert document.title == "Tom & Jerry"


@pytest.mark.parametrize(
    "html", ["<p>no title here</p>", "<title>   </title><p>x</p>"], ids=["missing", "blank"]
)
def test_page_without_a_title_has_none(html):
    assert parse_html(html, PAGE_URL).title is None


def test_entities_in_text_are_decoded():
    assert words_of("<p>caf&eacute; don&rsquo;t &lt;b&gt;</p>") == ["café", "don't", "b"]


def test_html_page_is_counted_from_its_bytes():
    body = (
        b'<html><head><meta charset="windows-1252"><title>Caf\xe9</title></head>'
        b"<body><p>Caf\xe9 caf\xe9 the end</p><script>x()</script></body></html>"
    )

    document = extract(html_response(body))
    counts = count_words(document.text)

    assert document.title == "Café"
    assert dict(counts) == {"café": 2, "the": 1, "end": 1}


def test_xhtml_page_is_parsed_as_html():
    body = b"<html><head><title>T</title></head><body><p>xhtml words</p></body></html>"
    response = Response(PAGE_URL, 200, "application/xhtml+xml", "utf-8", body)

    document = extract(response)

    assert document.title == "T"
    assert tokenize(document.text) == ["xhtml", "words"]


def test_plain_text_is_counted_whole_without_a_title():
    body = b"<title>Not a title</title> plain words"
    response = Response("http://example.com/notes.txt", 200, "text/plain", None, body)

    document = extract(response)

    assert document.title is None
    assert document.links == []
    assert tokenize(document.text) == ["title", "not", "a", "title", "title", "plain", "words"]


# Links found on a page.


def test_links_are_the_hrefs_as_written():
    html = (
        '<a href="other.html">a</a><a href="/abs#frag">b</a><a name="anchor">c</a>'
        '<a href="mailto:x@example.com">d</a><link href="style.css">'
    )

    assert parse_html(html, PAGE_URL).links == ["other.html", "/abs#frag", "mailto:x@example.com"]


def test_base_url_is_the_page_url_without_base_href():
    assert parse_html("<p>x</p>", PAGE_URL).base_url == PAGE_URL


@pytest.mark.parametrize(
    ("href", "base_url"),
    [
        ("/sub/", "http://example.com/sub/"),
        ("../up/", "http://example.com/up/"),
        ("https://cdn.example.org/x/", "https://cdn.example.org/x/"),
    ],
)
def test_base_href_sets_where_links_resolve(href, base_url):
    html = f'<head><base href="{href}"></head><body><a href="y.html">y</a></body>'

    assert parse_html(html, PAGE_URL).base_url == base_url


def test_base_without_href_is_ignored():
    assert parse_html('<base target="_blank"><p>x</p>', PAGE_URL).base_url == PAGE_URL


# Decoding as browsers do where word rule 1 leaves room.


def test_byte_order_mark_decides_when_http_names_no_charset():
    body = "\ufeff<p>naïve</p>".encode("utf-16-le")

    assert words_of(decode(body, None, is_html=True)) == ["naïve"]


def test_meta_declaring_utf16_on_ascii_bytes_means_utf8():
    body = '<meta charset="utf-16"><p>café</p>'.encode()

    assert "café" in decode(body, None, is_html=True)


def test_latin1_label_decodes_as_windows_1252_like_browsers():
    # 0x92 is a right single quotation mark in windows-1252, a control code in ISO-8859-1.
    assert tokenize(decode(b"<p>don\x92t</p>", "iso-8859-1", is_html=True)) == ["p", "don't", "p"]


def test_inline_svg_title_is_not_the_page_title():
    document = parse_html("<body><svg><title>Icon</title></svg><p>text</p></body>", PAGE_URL)

    assert document.title is None


@pytest.mark.parametrize(
    "html",
    [
        "<div>" * 30_000 + "deep words" + "</div>" * 30_000,
        "<div>" * 30_000 + "deep words",  # never closed
        "<svg>" * 30_000 + "hidden" + "</svg>" * 30_000 + "<p>deep words</p>",
    ],
    ids=["closed", "unclosed", "hidden"],
)
def test_deeply_nested_tags_are_parsed(html):
    assert words_of(html) == ["deep", "words"]
