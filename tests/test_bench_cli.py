"""`roadwatch bench` (README, "Command line"): the benchmark scripts from the command line."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from roadwatch.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_bench_list_names_every_script(runner: CliRunner) -> None:
    r = runner.invoke(main, ["bench", "--list"])
    assert r.exit_code == 0, r.output
    listed = {line.split()[0] for line in r.stdout.splitlines() if line.strip()}
    scripts = {p.stem.removeprefix("bench_") for p in (ROOT / "bench").glob("bench_*.py")}
    assert listed == scripts
    assert {"ingest", "snap", "rank", "browser"} <= listed


def test_bench_unknown_name_says_which_exist(runner: CliRunner) -> None:
    r = runner.invoke(main, ["bench", "nosuch"])
    assert r.exit_code == 2, r.output
    err = r.stderr
    assert "no benchmark 'nosuch'" in err and "ingest" in err


@pytest.mark.slow
def test_bench_passes_its_arguments_on() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "roadwatch.cli", "bench", "sweep", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "bench_sweep.py" in out.stdout and "--cases" in out.stdout


@pytest.mark.slow
@pytest.mark.integration
def test_bench_ingest_runs_end_to_end_and_prints_its_figures() -> None:
    """A small run of the real ingest benchmark: private Mosquitto, `roadwatch worker`, SQLite."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "roadwatch.cli",
            "bench",
            "ingest",
            "--count",
            "300",
            "--seconds",
            "1",
            "--rate",
            "100",
            "--database",
            "sqlite",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    figures = {}
    for label in ("raw broker", "roadwatch"):
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith(label))
        rate, p50, p99 = (float(x.replace(",", "")) for x in line.split()[-3:])
        assert rate > 0 and 0 < p50 <= p99
        figures[label] = rate
    found = re.search(r"ratio roadwatch / raw broker: ([0-9.]+)", out.stdout)
    assert found is not None
    ratio = float(found[1])
    assert ratio == pytest.approx(figures["roadwatch"] / figures["raw broker"], abs=0.01)
    outcomes = ast.literal_eval(  # the bench prints a dict literal of ack statuses
        out.stdout.split("outcomes of the throughput run: ", 1)[1].splitlines()[0]
    )
    assert sum(outcomes.values()) == 300 and set(outcomes) <= {"accepted", "needs_review"}
