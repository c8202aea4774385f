"""Fast JSON to bytes for the hot path (acks, JSON columns written with COPY).

orjson, with numpy scalars allowed (snapping hands back numpy floats) and NaN written as
null, so a stray NaN can never make PostgreSQL refuse a whole batch.
"""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _fallback(value: Any) -> Any:
    if isinstance(value, float | int):  # subclasses orjson does not take as they are
        return float(value) if isinstance(value, float) else int(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_fallback, option=_OPTIONS)
