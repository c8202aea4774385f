"""README.md matches the tree (issue 16, acceptance f).

Everything is read from README.md itself: the layout table and the top-level list against the
files, the "Command line" block against the click group (`roadwatch.cli.main`), the settings
table against `Settings`, and every repository path or relative link it names against the
checkout. Each failure lists exactly what is missing.
"""

from __future__ import annotations

import glob
import re
import shlex
import subprocess
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from roadwatch.cli import main
from roadwatch.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PKG = ROOT / "roadwatch"

# A repository path inside backticks: one of these top-level folders, then a path.
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:config|docs|bench|tests|roadwatch|geo|frontend)/[\w./*{}-]*)"
)
# MQTT topics look like paths of roadwatch/ but are not files.
TOPIC_PREFIX = "roadwatch/v1"


def section(title: str) -> str:
    """The text of the section headed `title` (up to the next heading of the same level)."""
    m = re.search(rf"^(#+) {re.escape(title)}\s*$", README, re.M)
    assert m, f"README.md has no section {title!r}"
    level = len(m.group(1))
    rest = README[m.end() :]
    end = re.search(rf"^#{{1,{level}}} ", _without_code(rest), re.M)
    return rest[: end.start()] if end else rest


def _without_code(text: str) -> str:
    """`text` with fenced code blocks blanked out (same length), so `# comment` lines in them
    are not taken for headings."""
    return re.sub(
        r"^```.*?^```", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.M | re.S
    )


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)


def table_first_cells(text: str) -> list[str]:
    """The first cell of each body row of the markdown tables in `text`."""
    cells = []
    for line in text.splitlines():
        if not line.startswith("|") or re.match(r"^\|\s*:?-", line):
            continue
        cells.append(line.split("|")[1].strip())
    return cells[1:] if cells else cells  # the header row


def backticked(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def _exists(path: str) -> bool:
    path = path.rstrip(".,;:")
    if "*" in path:
        return bool(glob.glob(str(ROOT / path)))
    return (ROOT / path).exists()


# --- (a) the layout ----------------------------------------------------------------------------


def layout_paths() -> list[str]:
    paths = []
    for cell in table_first_cells(section("Layout")):
        paths += backticked(cell)
    return paths


def test_layout_table_paths_exist() -> None:
    missing = [p for p in layout_paths() if not _exists(p)]
    assert not missing, f"README layout table names paths that do not exist: {missing}"


def test_layout_table_covers_every_package_and_module() -> None:
    listed = {p.rstrip("/") for p in layout_paths()}
    wanted = sorted(
        f"roadwatch/{d.name}/" for d in PKG.iterdir() if (d / "__init__.py").is_file()
    ) + sorted(f"roadwatch/{f.name}" for f in PKG.glob("*.py") if f.name != "__init__.py")
    missing = [p for p in wanted if p.rstrip("/") not in listed]
    assert not missing, f"README layout table leaves out: {missing}"


def test_top_level_list_matches_the_tree() -> None:
    text = section("Layout")
    m = re.search(r"The top level holds exactly:(.*?)\n\n", text, re.S)
    assert m, "README's Layout section has no 'The top level holds exactly:' paragraph"
    said = {p.rstrip("/") for p in backticked(m.group(1))}
    said = {p for p in said if "/" not in p}  # `config/deploy/` is said of config/
    try:
        out = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    tracked = {line.split("/")[0] for line in out.splitlines() if line}
    tracked = {t for t in tracked if not t.startswith(".") or t == ".ci"}
    assert not tracked - said, f"README's top-level list leaves out: {sorted(tracked - said)}"
    assert not said - tracked, (
        f"README's top-level list names what is not there: {sorted(said - tracked)}"
    )


# --- (b) the command line ----------------------------------------------------------------------


def cli_commands(
    group: click.Group = main, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, cmd in sorted(group.commands.items()):
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from cli_commands(cmd, (*prefix, name))


COMMANDS = dict(cli_commands())
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def command_lines() -> list[str]:
    blocks = code_blocks(section("Command line"))
    assert blocks, "README's Command line section has no code block"
    lines = []
    for raw in blocks[0].splitlines():
        line = re.sub(r"\s#\s.*$", "", raw).strip()  # comments
        if line.startswith("roadwatch"):
            lines += re.split(r"\s/\s+(?=roadwatch\b)", line)  # `A / roadwatch B`
    return lines


def parse_command_line(line: str) -> tuple[list[tuple[str, ...]], list[str], list[str]]:
    """(the command paths a line names, the options it shows, what did not resolve)."""
    words = shlex.split(line.replace("…", " "), posix=False)[1:]
    paths: list[tuple[str, ...]] = [()]
    unknown: list[str] = []
    for word in words:
        if not re.fullmatch(r"[a-z][a-z-]*(\|[a-z][a-z-]*)*", word):
            break
        if not all(isinstance(COMMANDS.get(p, main), click.Group) for p in paths):
            break
        nxt = []
        for p in paths:
            for alt in word.split("|"):
                if (*p, alt) in COMMANDS:
                    nxt.append((*p, alt))
                else:
                    unknown.append(" ".join(("roadwatch", *p, alt)))
        paths = nxt
    options = OPTION.findall(" ".join(words).replace("[", " ").replace("]", " "))
    return [p for p in paths if p], options, unknown


def test_command_block_names_real_commands_and_options() -> None:
    problems = []
    for line in command_lines():
        paths, options, unknown = parse_command_line(line)
        problems += [f"{line!r}: no command {u!r}" for u in unknown]
        if not paths and not unknown:
            problems.append(f"{line!r}: names no command")
        for p in paths:
            cmd = COMMANDS[p]
            known = {"--help", "-h"}
            for param in cmd.params:
                if isinstance(param, click.Option):
                    known |= set(param.opts) | set(param.secondary_opts)
            problems += [
                f"{line!r}: `roadwatch {' '.join(p)}` has no option {o}"
                for o in options
                if o not in known
            ]
    assert not problems, "README's Command line block:\n" + "\n".join(problems)


def test_command_block_lists_every_command() -> None:
    shown: set[tuple[str, ...]] = set()
    for line in command_lines():
        for p in parse_command_line(line)[0]:
            shown |= {p[:i] for i in range(1, len(p) + 1)}
    missing = sorted(
        "roadwatch " + " ".join(p)
        for p, cmd in COMMANDS.items()
        if p not in shown and not isinstance(cmd, click.Group)
    )
    assert not missing, f"README's Command line block leaves out: {missing}"


# --- (c) settings, paths and links -------------------------------------------------------------


def test_settings_table_names_real_settings() -> None:
    real = {f"ROADWATCH_{name.upper()}" for name in Settings.model_fields}
    named = [
        name
        for cell in table_first_cells(section("Configuration"))
        for name in backticked(cell)
        if name.startswith("ROADWATCH_")
    ]
    assert named, "README's settings table names no ROADWATCH_ setting"
    unknown = sorted(set(named) - real)
    assert not unknown, f"README's settings table names settings that do not exist: {unknown}"


def repo_paths() -> list[str]:
    found = []
    for span in backticked(_fenced_removed(README)):
        found += REPO_PATH.findall(span)
    # The data-flow picture is a code block: its paths count too.
    for block in code_blocks(section("Data flow")):
        found += REPO_PATH.findall(block)
    return [p for p in found if not p.startswith(TOPIC_PREFIX)]


def _fenced_removed(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def test_repo_paths_exist() -> None:
    missing = sorted({p for p in repo_paths() if not _exists(p)})
    assert not missing, f"README names repository paths that do not exist: {missing}"


def test_data_flow_modules_exist() -> None:
    """The picture's bare module names (`broadcast.py`, `events.py`) are files of roadwatch/."""
    names = set()
    for block in code_blocks(section("Data flow")):
        names |= set(re.findall(r"(?<![\w/])([a-z_]+\.py)", block))
    missing = sorted(n for n in names if not list(PKG.rglob(n)))
    assert not missing, f"README's data-flow picture names modules that do not exist: {missing}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+ (.+)$", _without_code(text), re.M)}


def test_relative_links_resolve() -> None:
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", README):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        text = README
        if path:
            if not (ROOT / path).exists():
                problems.append(f"{target}: no file {path}")
                continue
            if not path.endswith(".md"):
                continue
            text = (ROOT / path).read_text(encoding="utf-8")
        if anchor and anchor not in anchors(text):
            problems.append(f"{target}: no heading #{anchor} in {path or 'README.md'}")
    assert not problems, "README's links that do not resolve:\n" + "\n".join(problems)


@pytest.mark.parametrize("doc", ["deploy.md", "scale.md", "security.md", "protocol.md"])
def test_docs_name_repository_paths_that_exist(doc: str) -> None:
    """The operators' documents are read by people who only have them: a repository path
    they name in backticks exists (docs/deploy.md named `config/mosquitto/roadwatch.conf`,
    a folder that is not there)."""
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    found = [p for span in backticked(text) for p in REPO_PATH.findall(span)]
    missing = sorted({p for p in found if not p.startswith(TOPIC_PREFIX) and not _exists(p)})
    assert not missing, f"docs/{doc} names repository paths that do not exist: {missing}"
