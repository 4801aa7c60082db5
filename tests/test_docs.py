"""The docs stay true: README.md, docs/*.md and notebooks/ against the code they describe.

Fast and without services. Every relative link (and #anchor) resolves; every command in a
code block parses (`wordcrawl ...` with the real click command line, `make` targets in the
Makefile, `curl` paths against the manager's URL map, compose services in
docker-compose.yml); every repository path named in inline code exists; the reference
names every API route, command, option, environment variable (with the defaults the code
has) and table column; the README's numbers about a crawl of the demo site follow from
the demo site's links; and no text cites a document the repository does not have.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path

import click
import pytest
import yaml
from werkzeug.exceptions import MethodNotAllowed, NotFound

from job_manager import create_app
from job_tasks.settings import Settings
from job_tasks.storing.models import Base
from wordcrawl.cli import main as wordcrawl_cli
from wordcrawl.demo_site import DemoSite

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "notebooks/README.md"]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REFERENCE = ROOT / "docs" / "reference.md"
# Where a path named in the docs may start: the repository's own folders and files.
TOP_LEVEL = {path.name for path in ROOT.iterdir() if not path.name.startswith(".")} | {
    ".env.example"
}
MANAGER_HOSTS = ("127.0.0.1:5000", "localhost:5000")

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"``?([^`\n]+)``?")
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)


def text_of(path: Path) -> str:
    """The prose of a doc: a notebook's markdown cells, else the file."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n\n".join(
            "".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"
        )
    return path.read_text()


def prose(text: str) -> str:
    """The text without its fenced code blocks."""
    return FENCE.sub("", text)


def code_blocks(text: str, *languages: str) -> Iterator[str]:
    for language, body in FENCE.findall(text):
        if language in languages:
            yield body


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(prose(text_of(path))):
        base = slug(heading)
        count = found.get(base, 0)
        result.add(base if count == 0 else f"{base}-{count}")
        found[base] = count + 1
    return result


def section(text: str, title: str) -> str:
    """The text of a `## title` section, up to the next `## `."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def doc_ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


# --- Links -------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", [*DOCS, *NOTEBOOKS], ids=doc_ids([*DOCS, *NOTEBOOKS]))
def test_every_relative_link_and_anchor_resolves(doc: Path):
    text = INLINE_CODE.sub("", prose(text_of(doc)))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        linked = (doc.parent / path_part).resolve() if path_part else doc
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert not broken, broken


def test_the_docs_map_names_every_page_of_docs():
    readme = (ROOT / "README.md").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f"](docs/{page.name})" in readme, page.name


# --- Commands ----------------------------------------------------------------------------


def simple_commands(block: str) -> Iterator[list[str]]:
    """The simple commands of a shell block: continuations joined, comments dropped, split
    at `&&`, `;` and `|`, leading VAR=value assignments removed."""
    for line in block.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for token in [*lexer, ";"]:
            if set(token) <= set(";&|"):
                while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                    words.pop(0)
                if words:
                    yield words
                words = []
            else:
                words.append(token)


def shell_commands(doc: Path) -> list[list[str]]:
    return [
        words
        for block in code_blocks(text_of(doc), "sh", "console")
        for words in simple_commands(re.sub(r"^\$ ", "", block, flags=re.MULTILINE))
        if not words[0].startswith(("would", "removed"))  # a console block's output
    ]


def check_wordcrawl(args: list[str]) -> None:
    """Parse a `wordcrawl` command line with the real command, without running it."""
    with click.Context(wordcrawl_cli, info_name="wordcrawl") as ctx:
        name, command, rest = wordcrawl_cli.resolve_command(ctx, list(args))
        command.make_context(name, rest, parent=ctx).close()


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def compose_services() -> set[str]:
    return set(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])


@pytest.fixture(scope="module")
def manager_routes():
    return create_app({"TESTING": True}).url_map.bind("127.0.0.1:5000")


def check_curl(words: list[str], routes) -> None:
    """A curl to the manager names a route that takes its method."""
    url = next(word for word in words if word.startswith("http"))
    host, _, path = url.split("://", 1)[1].partition("/")
    if host not in MANAGER_HOSTS:
        return  # Flower, Prometheus: not ours to check
    method = words[words.index("-X") + 1] if "-X" in words else ("POST" if "-d" in words else "GET")
    path = "/" + path.split("?", 1)[0]
    try:
        routes.match(path, method=method)
    except (NotFound, MethodNotAllowed) as err:
        raise AssertionError(f"{method} {path}: {type(err).__name__}") from None


def run_check(words: list[str], routes) -> None:
    program = words[0].rsplit("/", 1)[-1]
    if program == "wordcrawl":
        check_wordcrawl(words[1:])
    elif words[:3] in (["python", "-m", "wordcrawl"], [".venv/bin/python", "-m", "wordcrawl"]):
        check_wordcrawl(words[3:])
    elif program == "make":
        assert set(words[1:]) <= makefile_targets(), words
    elif program == "curl":
        check_curl(words, routes)
    elif words[:2] == ["docker", "compose"] or program == "docker-compose":
        named = {word.split("=")[0] for word in words if word.startswith("job_")}
        assert named <= compose_services(), named - compose_services()
        if "--profile" in words:
            assert words[words.index("--profile") + 1] in (ROOT / "docker-compose.yml").read_text()


@pytest.mark.parametrize("doc", DOCS, ids=doc_ids(DOCS))
def test_every_command_in_a_code_block_parses(doc: Path, manager_routes):
    checked, failed = 0, []
    for words in shell_commands(doc):
        try:
            run_check(words, manager_routes)
            checked += 1
        except (click.ClickException, AssertionError, StopIteration) as err:
            failed.append(f"{shlex.join(words)}: {err}")
    assert not failed, "\n".join(failed)


def inline_wordcrawl(doc: Path) -> Iterator[str]:
    for code in INLINE_CODE.findall(prose(text_of(doc))):
        if re.match(r"(\.venv/bin/)?wordcrawl [a-z]", code):
            yield code.removeprefix(".venv/bin/")


# A synopsis or a mention, not a command to type: placeholders (`JOB`, `[--top N]`,
# `URL...`, `add|remove`) or a bare option: its options must exist, nothing more.
SYNOPSIS = re.compile(r"[\[\]|<>]|\.\.\.|…|\b[A-Z]{2,}\b|-\S+$")


@pytest.mark.parametrize("doc", DOCS, ids=doc_ids(DOCS))
def test_every_wordcrawl_command_in_the_text_is_real(doc: Path):
    """A command in the text parses; a synopsis (`up [--workers N]`) names real options."""
    failed = []
    for code in inline_wordcrawl(doc):
        words = code.split()
        command = wordcrawl_cli.commands.get(words[1])
        if command is None:
            failed.append(f"{code}: no command {words[1]}")
            continue
        options = {opt for param in command.params for opt in param.opts}
        unknown = {w.strip("[]") for w in words if w.strip("[]").startswith("-")} - options
        if unknown:
            failed.append(f"{code}: no option {sorted(unknown)}")
        elif len(words) > 2 and not SYNOPSIS.search(code):
            try:
                check_wordcrawl(words[1:])
            except click.ClickException as err:
                failed.append(f"{code}: {err.format_message()}")
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("doc", DOCS, ids=doc_ids(DOCS))
def test_every_make_target_named_exists(doc: Path):
    named = {m for m in re.findall(r"`make ([\w-]+)", text_of(doc))}
    assert named <= makefile_targets(), named - makefile_targets()


# --- Files -------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", [*DOCS, *NOTEBOOKS], ids=doc_ids([*DOCS, *NOTEBOOKS]))
def test_every_repository_path_named_exists(doc: Path):
    missing = []
    for code in INLINE_CODE.findall(prose(text_of(doc))):
        code = code.strip()
        if " " in code or not re.fullmatch(r"[\w.*/-]+", code):
            continue
        first = code.split("/", 1)[0]
        named = first in TOP_LEVEL and ("/" in code or (ROOT / first).is_file())
        if named and not list(ROOT.glob(code.rstrip("/"))):
            missing.append(code)
    assert not missing, missing


# --- The reference against the code -----------------------------------------------------


def reference_section(title: str) -> str:
    return section(REFERENCE.read_text(), title)


def test_the_reference_names_every_route():
    app = create_app({"TESTING": True})
    api = reference_section("The HTTP API")
    pages = reference_section("The web pages")
    written = {re.sub(r"<[^>]+>", "<>", path) for path in re.findall(r"`[A-Z]* ?(/[^`? ]*)", api)}
    written |= {re.sub(r"<[^>]+>", "<>", path) for path in re.findall(r"`(/[^`? ]*)`", pages)}
    missing = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<[^>]+>", "<>", rule.rule)
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        if rule.endpoint == "static":
            continue
        if path.startswith("/api/") or path == "/metrics":
            for method in methods:
                call = f"`{method} {re.sub(r'<>', '<', path)}"
                if not re.search(
                    re.escape(f"`{method} ") + re.escape(path).replace("<>", "<[^>]+>") + r"[`? ]",
                    api,
                ):
                    missing.append(call)
        elif methods == ["GET"] and path not in written:
            missing.append(path)
    assert not missing, missing


def test_the_reference_names_every_command_and_option():
    text = reference_section("The command line")
    missing = []
    for name, command in wordcrawl_cli.commands.items():
        rows = [line for line in text.splitlines() if line.startswith(f"| `wordcrawl {name}")]
        if not rows:
            missing.append(name)
            continue
        for param in command.params:
            if isinstance(param, click.Option) and "--help" not in param.opts:
                long = max(param.opts, key=len)
                if long not in rows[0]:
                    missing.append(f"{name} {long}")
    assert not missing, missing


def variables_read() -> set[str]:
    """Every environment variable the code, compose and the notebooks read."""
    settings_source = (ROOT / "job_tasks/settings.py").read_text()
    names = set(re.findall(r'read\.\w+\(\s*"([A-Z][A-Z0-9_]+)"', settings_source))
    for path in [*ROOT.glob("wordcrawl/**/*.py"), *ROOT.glob("job_*/**/*.py"), *NOTEBOOKS]:
        names |= set(re.findall(r'environ(?:\.get\(|\[)\\?"([A-Z][A-Z0-9_]+)', path.read_text()))
    env_example = (ROOT / ".env.example").read_text()
    names |= set(re.findall(r"^([A-Z][A-Z0-9_]+)=", env_example, re.MULTILINE))
    compose = (ROOT / "docker-compose.yml").read_text()
    names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", compose))
    names |= set(re.findall(r"^\s+([A-Z][A-Z0-9_]+):", compose, re.MULTILINE))
    # Set inside compose for the servers' own images, or `${VAR:?message}` in a comment.
    return names - {"REDISCLI_AUTH", "POSTGRES_DB", "POSTGRES_USER", "PYTHONUNBUFFERED", "VAR"}


def configuration_rows() -> dict[str, str]:
    """The configuration tables of the reference: variable -> its default cell."""
    rows = re.findall(
        r"^\| `([A-Z][A-Z0-9_]+)` \| ([^|]*) \|", reference_section("Configuration"), re.MULTILINE
    )
    return dict(rows)


def test_the_reference_documents_every_environment_variable():
    documented = configuration_rows()
    read = variables_read()
    assert len(read) > 40
    assert not read - set(documented), f"not in docs/reference.md: {sorted(read - set(documented))}"


def test_the_documented_defaults_are_the_code_defaults():
    settings_source = (ROOT / "job_tasks/settings.py").read_text()
    field_of = dict(re.findall(r'read\.\w+\(\s*"([A-Z][A-Z0-9_]+)",\s*cls\.(\w+)', settings_source))
    defaults = {field.name: getattr(Settings, field.name, None) for field in fields(Settings)}
    documented = configuration_rows()
    wrong = []
    for variable, field_name in field_of.items():
        cell = documented[variable]
        literal = re.match(r"`([^`]*)`", cell)
        if literal is None:
            continue  # "empty", "a development key": said in words
        value = defaults[field_name]
        shown = {True: "1", False: "0"}.get(value, value) if isinstance(value, bool) else value
        if isinstance(value, float) and value.is_integer():
            shown = int(value)
        if literal.group(1) != str(shown):
            wrong.append(f"{variable}: documented {literal.group(1)!r}, the code says {shown!r}")
    assert not wrong, wrong


TYPES = "uuid|text|int|bigint|bigserial|boolean|timestamptz"


def test_the_reference_lists_every_table_and_column():
    block = next(
        body for body in code_blocks(reference_section("Tables"), "") if "word_counts(" in body
    )
    definitions = dict(re.findall(r"^(\w+)\((.*?)(?=^\w+\(|\Z)", block, re.MULTILINE | re.DOTALL))
    missing = []
    for table in Base.metadata.sorted_tables:
        if table.name not in definitions:
            missing.append(table.name)
            continue
        columns = set(re.findall(rf"\b(\w+) (?:{TYPES})\b", definitions[table.name]))
        missing += [f"{table.name}.{c.name}" for c in table.columns if c.name not in columns]
    assert not missing, missing


# --- Citations ---------------------------------------------------------------------------


def texts_students_read() -> Iterator[tuple[str, str]]:
    for path in [*DOCS, *NOTEBOOKS]:
        yield str(path.relative_to(ROOT)), path.read_text()


def test_no_doc_cites_a_text_the_repository_does_not_have():
    # Written [t] and [u], so that the same grep over the code does not find this line.
    pattern = re.compile(r"con[t]ract|Iss[u]e [0-9]")
    found = [
        f"{name}: {match.group(0)}"
        for name, text in texts_students_read()
        for match in pattern.finditer(text)
    ]
    assert not found, found


CITED_FILES = ["*.py", "*.yml", "*.ipynb", "Dockerfile", "Makefile", ".env.example"]
CITATION = re.compile(r'(README|docs/[\w-]+\.md)[,:]? +"([^"\\]+)')


def cited_headings() -> Iterator[tuple[str, str, str]]:
    """(file, document, heading) for every `(docs/x.md, "Heading")` in the code."""
    tops = [path for path in ROOT.iterdir() if path.name in TOP_LEVEL]  # not .venv
    for pattern in CITED_FILES:
        found = [p for top in tops for p in ([top] if top.is_file() else top.rglob("*"))]
        for path in found:
            if not path.match(pattern) or not path.is_file() or path.name == "test_docs.py":
                continue
            for document, heading in CITATION.findall(path.read_text(errors="replace")):
                # A heading cited across two lines of a comment or docstring: one line.
                heading = re.sub(r"\s*\n\s*(?:# ?)?", " ", heading)
                yield str(path.relative_to(ROOT)), document, heading


def test_every_section_the_code_cites_exists():
    wrong = []
    for source, document, heading in cited_headings():
        target = ROOT / ("README.md" if document == "README" else document)
        headings = {h.replace("`", "").lower() for h in HEADING.findall(prose(target.read_text()))}
        if heading.replace("`", "").lower() not in headings:
            wrong.append(f'{source}: {document}, "{heading}"')
    assert not wrong, wrong


# --- The README's numbers about a crawl of the demo site --------------------------------


def reach(
    site: DemoSite, seeds: list[str], depth: int, pick: Callable[[list[str], dict], str]
) -> dict[str, int]:
    """The pages a crawl finds, and their depth, when its pages are counted in `pick`'s
    order (a page's depth is the depth it was first found at, its shortest when counted
    level by level; robots.txt's /private/ is found but not followed)."""
    found = dict.fromkeys(seeds, 0)
    waiting = list(seeds)
    while waiting:
        page = pick(waiting, found)
        waiting.remove(page)
        number = site.page_number(page)
        if number is None or found[page] == depth:
            continue
        for href, _ in site.links(number):
            link = href.split("#")[0]
            if link.startswith("/") and link not in found:
                found[link] = found[page] + 1
                waiting.append(link)
    return found


def level_by_level(waiting: list[str], found: dict) -> str:
    return min(waiting, key=lambda page: found[page])


def deepest_first(waiting: list[str], found: dict) -> str:
    return max(waiting, key=lambda page: found[page])


README_TEXT = (ROOT / "README.md").read_text()
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


def test_the_guided_runs_pages_are_what_the_demo_site_has_within_three_links():
    said = int(re.search(r"It ends `done` with (\d+) pages", README_TEXT).group(1))
    site = DemoSite()  # the demo site `wordcrawl up` serves: 100 pages

    # A page's depth is its shortest distance from the seed: the pages a crawl counted
    # level by level, whatever order the workers really end them in.
    most = reach(site, ["/"], 3, level_by_level)

    assert said == len(most)
    assert re.search(rf"Always {said}\b", README_TEXT)
    assert "/private/report" in most  # the one page robots.txt refuses
    depth_1 = re.search(r"depth 0 is one page, depth 1 (\w+)", README_TEXT).group(1)
    assert sum(d == 1 for d in most.values()) == NUMBER_WORDS[depth_1]
    assert sum(d == 0 for d in most.values()) == 1


def test_the_exercises_big_crawl_has_as_many_pages_as_the_readme_says():
    block = next(code_blocks(section(README_TEXT, "Exercises"), "sh"))
    pages = int(re.search(r"--pages (\d+)", block).group(1))
    first, last = map(int, re.search(r"/page/\{(\d+)\.\.(\d+)\}", block).groups())
    said = int(re.search(r"the pages they link to: (\d+) pages", block).group(1))
    seeds = [f"/page/{n}" for n in range(first, last + 1)]

    found = reach(DemoSite(pages=pages), seeds, 1, level_by_level)

    # Depth 1 is found from the seeds alone: the same in every order.
    assert found == reach(DemoSite(pages=pages), seeds, 1, deepest_first)
    assert len(found) == said
    assert int(re.search(r"--max-pages (\d+)", block).group(1)) >= said
