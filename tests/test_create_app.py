"""create_app leaves the runtime it is given unchanged (issue 16, scope 6).

An app is a view on a runtime: building one (or two, as the tests do from one shared runtime)
must not re-point the runtime's live feed or add to it behind the caller's back.
"""

from __future__ import annotations

from typing import Any

from roadwatch.web import create_app


def _state(runtime: Any) -> dict[str, Any]:
    """Every attribute of the runtime and of its broadcaster, by identity, and the extras."""
    return {
        "runtime": {k: id(v) for k, v in vars(runtime).items()},
        "broadcaster": {k: id(v) for k, v in vars(runtime.broadcaster).items()},
        "extras": dict(runtime.extras),
        "settings": runtime.settings.model_dump(),
    }


def test_create_app_leaves_the_runtime_unchanged(runtime: Any) -> None:
    before = _state(runtime)
    emitter = runtime.broadcaster.emitter
    create_app(runtime)
    create_app(runtime, TESTING=True)
    assert _state(runtime) == before
    assert runtime.broadcaster.emitter is emitter
