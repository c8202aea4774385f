"""The merchant-frontage rule (门前三包): a merchant answers for a stretch of its segment.

A merchant's assignment holds `[from_chainage_m, to_chainage_m]` along the segment (no end:
to the segment's end). A spot at `chainage_m` is in the frontage when both are known and
`from <= chainage <= to`. The same rule, for SQL over `assignments a` and the ranking's
`findings f`, is FRONTAGE_SQL.
"""

from __future__ import annotations

import math

FRONTAGE_SQL = (
    "f.chainage_m IS NOT NULL AND a.from_chainage_m <= f.chainage_m"
    " AND (a.to_chainage_m IS NULL OR f.chainage_m <= a.to_chainage_m)"
)


def in_frontage(
    from_chainage_m: float | None, to_chainage_m: float | None, chainage_m: float | None
) -> bool | None:
    """Is the spot in the frontage? None when the spot or the frontage's start is unknown."""
    if chainage_m is None or from_chainage_m is None:
        return None
    end = to_chainage_m if to_chainage_m is not None else math.inf
    return from_chainage_m <= chainage_m <= end
