"""`roadwatch bench [NAME] [ARGS…]`: a benchmark script of the repository (bench/)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import CommandError

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def _benchmarks() -> dict[str, tuple[Path, str]]:
    """name → (script, its one-line summary), from the source checkout's bench/ folder."""
    import ast

    found = {}
    for script in sorted(BENCH_DIR.glob("bench_*.py")):
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
        found[script.stem.removeprefix("bench_")] = (script, (doc.splitlines() or [""])[0])
    return found


@click.command(
    help="run a benchmark script of the repository (bench/): ingest, snap, rank, …\n\n"
    "Runs bench/bench_NAME.py with the arguments that follow it, e.g. "
    "`roadwatch bench ingest --count 5000`, `roadwatch bench rank --help`; "
    "`roadwatch bench --list` names them all. NAME: which benchmark (default: ingest); "
    "ARGS: passed on to the script.",
    short_help="run a benchmark script of the repository (bench/): ingest, snap, rank, …",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("name", default="ingest")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--list", "list_them", is_flag=True, help="list the benchmarks and stop")
def bench(name: str, args: tuple[str, ...], list_them: bool) -> int:
    """Run one of the repository's benchmark scripts; they print their own figures."""
    import subprocess

    benches = _benchmarks() if BENCH_DIR.is_dir() else {}
    if not benches:
        raise CommandError(
            f"the benchmarks are scripts of a source checkout (bench/), and there is "
            f"none beside this installation ({BENCH_DIR}); clone the repository and install it "
            "with `pip install -e '.[test]'`"
        )
    if list_them or name == "list":
        width = max(map(len, benches))
        for each, (_script, summary) in benches.items():
            print(f"{each:{width}s}  {summary}")
        return 0
    if name not in benches:
        raise CommandError(f"no benchmark {name!r}; there are: {', '.join(benches)}")
    script = benches[name][0]
    # A child process, as the scripts run on their own (`python bench/bench_x.py …`): they
    # start brokers and workers of their own and must not share this process's state.
    return subprocess.call([sys.executable, str(script), *args], cwd=BENCH_DIR.parent)
