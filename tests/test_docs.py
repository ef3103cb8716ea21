"""The README and docs/ stay true: every command they show exists, every relative link resolves.

Checked without running any work (one import of ``tower_zoo.cli``, no subprocess):

- every ``tower-zoo ...`` (or ``python -m tower_zoo.cli ...``) command in a fenced code block or an inline code
  span of README.md and docs/*.md names one of ``tower_zoo.cli.COMMANDS``, and every ``--flag`` is an absl flag
  ``tower_zoo.cli`` (or absl itself) defines; the whole line is then parsed by a copy of the CLI's flags, so a
  value the CLI refuses (``--negatives random``, ``--epochs abc``, ``--alpha 2``) fails here too;
- every ``python -m benchmarks.X ...`` names an existing module of benchmarks/ and only flags it defines
  (read from its ``flags.DEFINE_*`` calls and those of the benchmarks modules it imports);
- every ``python`` code block parses, and each of its imports names a module and names that exist;
- every relative Markdown link or image points at an existing file, and a ``#anchor`` at a heading of it;
- every docs page is linked from the README, and the README is at most 300 lines.

The README's quick start itself (its schema file, describe -> prepare -> train --data -> evaluate -> export ->
recommend, and its Python block) runs as written in tests/test_readme_quickstart.py; the same journey on the
built-in synthetic set is tests/test_cli_data.py (``test_prepare_then_describe``,
``test_train_on_prepared_data_streams_and_evaluate_reproduces``) and tests/test_recommend.py (``recommend --users``).
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib
import importlib.util
import pathlib
import re
import shlex

import pytest
from absl import flags

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 300

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HELP_FLAGS = frozenset({"help", "helpshort", "helpfull", "helpxml"})  # absl.app adds them in app.run
CLI_PREFIXES = (("tower-zoo",), ("python", "-m", "tower_zoo.cli"))


def _relative(path: pathlib.Path) -> str:
    return str(path.relative_to(ROOT))


def split_fences(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(lines inside fenced code blocks, lines outside them), each as (1-based line number, text)."""
    inside, outside, fenced = [], [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        (inside if fenced else outside).append((number, line))
    return inside, outside


def _segments(line: str) -> list[list[str]]:
    """The shell words of each command of ``line`` (split at ``&&``, ``||``, ``;`` and ``|``; comments dropped)."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote: not a shell line
        return []
    segments, current = [], []
    for word in words:
        if word in ("&&", "||", ";", "|"):
            segments.append(current)
            current = []
        else:
            current.append(word)
    return [*segments, current]


def _command_after_prefix(words: list[str]) -> list[str] | None:
    for prefix in CLI_PREFIXES:
        if tuple(words[:len(prefix)]) == prefix:
            return ["tower-zoo", *words[len(prefix):]]
    return None


def shown_commands() -> list[tuple[str, list[str]]]:
    """Every (where, shell words) of a CLI or benchmark command shown in a code block or inline code span."""
    found = []
    for page in PAGES:
        inside, outside = split_fences(page.read_text())
        candidates = [(n, line) for n, line in inside]
        candidates += [(n, span) for n, line in outside for span in INLINE_CODE.findall(line)]
        for number, text in candidates:
            for words in _segments(text):
                command = _command_after_prefix(words)
                if command is None and words[:2] == ["python", "-m"] and words[2:3] and \
                        words[2].startswith("benchmarks."):
                    command = words[2:]
                if command is not None:
                    found.append((f"{_relative(page)}:{number}", command))
    return found


def _flag_name(word: str) -> str | None:
    """``--flag=value`` / ``--flag`` / ``-flag`` -> ``flag``; None for a value."""
    if not word.startswith("-") or word in ("-", "--") or re.match(r"^-\d", word):
        return None
    return word.lstrip("-").split("=", 1)[0]


def _known(name: str, defined: set[str], booleans: set[str]) -> bool:
    return name in defined or (name.startswith("no") and name[2:] in booleans)


def _flags_defined_by(values, owns) -> tuple[frozenset[str], frozenset[str]]:
    """(names, boolean names) of the flags in ``values`` that modules ``owns(module name)`` defined, and absl's
    help flags."""
    defined = [flag for module, module_flags in values.flags_by_module_dict().items() if owns(module)
               for flag in module_flags]
    return (frozenset(f.name for f in defined) | HELP_FLAGS,
            frozenset(f.name for f in defined if isinstance(f, flags.BooleanFlag)) | HELP_FLAGS)


@functools.lru_cache(maxsize=None)
def cli_flags() -> tuple[object, frozenset[str], frozenset[str]]:
    """(tower_zoo.cli.FLAGS, the flag names tower_zoo.cli and absl define, the boolean ones among them)."""
    from tower_zoo import cli

    owned = _flags_defined_by(cli.FLAGS, lambda module: module == cli.__name__ or module.startswith("absl"))
    return (cli.FLAGS, *owned)


def absl_flags() -> tuple[frozenset[str], frozenset[str]]:
    """(names, boolean names) of the flags absl itself defines, which every absl app accepts."""
    return _flags_defined_by(cli_flags()[0], lambda module: module.startswith("absl"))


def _imported_names(tree: ast.AST) -> list[tuple[str, str | None]]:
    """(module, name or None) of every import statement in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
    return found


def _module_file(module: str) -> pathlib.Path:
    """benchmarks.harness -> ROOT/benchmarks/harness.py"""
    return ROOT / (module.replace(".", "/") + ".py")


def _defined_flags(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(names, boolean names) of the ``flags.DEFINE_*("name", ...)`` calls in ``tree``."""
    names, booleans = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if function.startswith("DEFINE_") and node.args and isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value)
                if function in ("DEFINE_boolean", "DEFINE_bool"):
                    booleans.add(node.args[0].value)
    return names, booleans


@functools.lru_cache(maxsize=None)
def benchmark_flags(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """(flag names, boolean flag names) the ``flags.DEFINE_*`` calls of benchmarks/MODULE.py and of the
    benchmarks modules it imports define, read from the source (importing a benchmark would redefine the CLI's
    flags in this process)."""
    path = _module_file(module)
    tree = ast.parse(path.read_text(), filename=str(path))
    names, booleans = _defined_flags(tree)
    for name, _ in _imported_names(tree):
        if name.startswith("benchmarks.") and name != module and _module_file(name).is_file():
            more, more_booleans = benchmark_flags(name)
            names |= more
            booleans |= more_booleans
    return frozenset(names), frozenset(booleans)


def check_cli_command(words: list[str]) -> list[str]:
    """The problems of one ``tower-zoo ...`` command line (empty when the CLI accepts it)."""
    from tower_zoo import cli

    positional = [w for w in words[1:] if not w.startswith("-")]
    problems = []
    if not words[1:] or words[1] not in cli.COMMANDS:
        problems.append(f"command {words[1] if words[1:] else '(none)'!r} is not one of {', '.join(cli.COMMANDS)}")
    values, names, booleans = cli_flags()
    unknown = [w for w in words[1:] if _flag_name(w) and not _known(_flag_name(w), names, booleans)]
    problems += [f"{w}: tower_zoo.cli defines no flag {_flag_name(w)!r}" for w in unknown]
    if not problems:
        parser = copy.deepcopy(values)
        parser.unparse_flags()
        try:
            rest = parser([w for w in words if _flag_name(w) not in HELP_FLAGS])
        except flags.Error as err:
            problems.append(f"the CLI refuses it: {err}")
        else:
            if rest[1:] != positional[:1] or len(rest) != 2:
                problems.append(f"expected one command and flags, the CLI sees positional {rest[1:]}")
    return problems


def check_benchmark_command(words: list[str]) -> list[str]:
    """The problems of one ``python -m benchmarks.X ...`` command line."""
    module = words[0]
    if not _module_file(module).is_file():
        return [f"there is no module {module} (benchmarks/{module.split('.', 1)[1]}.py)"]
    names, booleans = benchmark_flags(module)
    if not names:
        return [f"{module} defines no absl flags to check the line against"]
    absl_names, absl_booleans = absl_flags()
    return [f"{w}: {module} defines no flag {_flag_name(w)!r}" for w in words[1:]
            if _flag_name(w) and not _known(_flag_name(w), names | absl_names, booleans | absl_booleans)]


COMMANDS = shown_commands()


def test_the_docs_show_commands_of_both_kinds():
    """The extraction finds the commands (a broken extractor would make the checks below vacuous)."""
    shown = {" ".join(words[:2]) for _, words in COMMANDS}
    for expected in ("tower-zoo describe", "tower-zoo prepare", "tower-zoo train", "tower-zoo evaluate",
                     "tower-zoo export", "tower-zoo recommend", "benchmarks.harness"):
        assert any(s.startswith(expected) for s in shown), (expected, sorted(shown))
    assert any(where.startswith("README.md") for where, _ in COMMANDS)


@pytest.mark.parametrize("where,words", COMMANDS, ids=[f"{w} {' '.join(c[:2])}" for w, c in COMMANDS])
def test_every_shown_command_is_a_real_one(where, words):
    check = check_cli_command if words[0] == "tower-zoo" else check_benchmark_command
    problems = check(words)
    assert not problems, f"{where}: {' '.join(words)}: " + "; ".join(problems)


def python_blocks() -> list[tuple[str, str]]:
    """(where, source) of every fenced ``python`` code block."""
    found = []
    for page in PAGES:
        lines, start = page.read_text().splitlines(), None
        for number, line in enumerate(lines, start=1):
            if FENCE.match(line):
                if start is None:
                    start = number if line.strip().lstrip("`~").strip() == "python" else -number
                else:
                    if start > 0:
                        found.append((f"{_relative(page)}:{start}", "\n".join(lines[start:number - 1])))
                    start = None
    return found


PYTHON_BLOCKS = python_blocks()


@pytest.mark.parametrize("where,source", PYTHON_BLOCKS, ids=[w for w, _ in PYTHON_BLOCKS])
def test_every_python_block_parses_and_its_imports_exist(where, source):
    tree = ast.parse(source, filename=where)
    for module_name, name in _imported_names(tree):
        module = importlib.import_module(module_name)
        assert name is None or hasattr(module, name) or importlib.util.find_spec(f"{module_name}.{name}"), \
            f"{where}: `from {module_name} import {name}`: {module_name} has no {name!r}"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (not - or _), spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@functools.lru_cache(maxsize=None)
def anchors(path: pathlib.Path) -> frozenset[str]:
    """The anchors of ``path``'s headings (a repeated heading gets -1, -2, ... as on GitHub)."""
    _, outside = split_fences(path.read_text())
    seen, result = {}, set()
    for _, line in outside:
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            anchor = _anchor(match.group(1))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            result.add(anchor if count == 0 else f"{anchor}-{count}")
    return frozenset(result)


def relative_links() -> list[tuple[str, pathlib.Path, str]]:
    """(where, page, link target) of every relative link and image outside code blocks and code spans."""
    found = []
    for page in PAGES:
        _, outside = split_fences(page.read_text())
        for number, line in outside:
            for target in LINK.findall(INLINE_CODE.sub("", line)):
                if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                    found.append((f"{_relative(page)}:{number}", page, target))
    return found


LINKS = relative_links()


def test_the_docs_have_links_and_images():
    assert any(target.endswith(".png") for _, _, target in LINKS)
    assert any("#" in target for _, _, target in LINKS)


@pytest.mark.parametrize("where,page,target", LINKS, ids=[f"{w} {t}" for w, _, t in LINKS])
def test_every_relative_link_resolves(where, page, target):
    file_part, _, anchor = target.partition("#")
    resolved = (page.parent / file_part).resolve() if file_part else page
    assert resolved.exists(), f"{where}: {target} -> {resolved} does not exist"
    if anchor and resolved.suffix == ".md":
        assert anchor in anchors(resolved), \
            f"{where}: {target}: {_relative(resolved)} has no heading with anchor #{anchor}"


def test_every_docs_page_is_linked_from_the_readme_and_the_readme_is_short():
    readme = (ROOT / "README.md").read_text()
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in LINK.findall(readme)}
    orphans = [_relative(p) for p in PAGES[1:] if p.resolve() not in linked]
    assert not orphans, f"docs pages the README does not link: {orphans}"
    lines = len(readme.splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; the front door holds at most {MAX_README_LINES}"
