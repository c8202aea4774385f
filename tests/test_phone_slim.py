"""Issue 20 c: the phone's bundle is served without whole-line comments and indentation
(a third of its gzipped bytes on a 400 kbit/s link), and nothing else in it changes."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import roadwatch.web
from roadwatch.web.mobile import bundle_modules, slim

PHONE = Path(roadwatch.web.__file__).parent / "static/m"


def test_slim_takes_out_whole_line_comments_only() -> None:
    src = (
        "// @ts-check\n"
        "/* a module's header\n * over lines */\n"
        "// ---- forms.js\n"
        "  /** @type {X} */ (foo).bar = 1; // kept: code on the line\n"
        "    /**\n     * @param {string} a\n     */\n"
        '    const s = "/* not a comment */ // nor this";\n'
        "const u = `http://x/${a}`;\n"
    )
    assert slim(src) == (
        "// ---- forms.js\n"
        "/** @type {X} */ (foo).bar = 1; // kept: code on the line\n"
        'const s = "/* not a comment */ // nor this";\n'
        "const u = `http://x/${a}`;\n"
    )


def test_served_bundle_is_a_third_smaller_and_keeps_every_statement(client: object) -> None:
    full = bundle_modules(PHONE)
    served = client.get("/m/app.js").get_data(as_text=True)  # type: ignore[attr-defined]
    assert served == slim(full)
    small, big = len(gzip.compress(served.encode(), 6)), len(gzip.compress(full.encode(), 6))
    assert small < 0.75 * big, (small, big)
    # every line of code is still there, in its order
    code = [ln.strip() for ln in slim(full).splitlines()]
    only_comment = re.compile(r"/\*.*\*/|\*/?( .*)?|//(?! ---- ).*")
    assert [ln for ln in code if only_comment.fullmatch(ln)] == []
    assert code.count("wire();") == 1
