"""Who may do what in a case: the permission table, decided in this one place.

Every path that changes a case asks `may(actor, action, case)`: the chiefs' MQTT and HTTP
path (roadwatch.cases.workflow.apply_case_message) and the command centre's staff actions.
The state machine (workflow.ALLOWED) says *when* a change may happen; this table says *who*.
docs/security.md, section 4, shows the same table in words.

An actor is either a reporter (a road chief, partner unit, merchant, evaluator or covert
checker, as the MQTT username / phone credential / API key identifies them) or a staff user
of the command centre (role and district from the login). Never a body field.

"The case's time" is the moment that decides who is responsible: for a rectification its
`done_at` clamped between the case's dispatch (or reopening) and the message's receipt
(`clamp_done_at`), for a verification its clamped `done_at`, for a staff action now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..network.frontage import in_frontage

if TYPE_CHECKING:
    from .workflow import Holder

# -- actors -----------------------------------------------------------------------
STAFF_ROLES = ("viewer", "district_staff", "admin")


@dataclass(frozen=True, slots=True)
class Reporter:
    """A person or unit with a reporter id: kind is the reporters table's kind
    (person, unit, merchant, evaluator, covert); None when the id is not registered."""

    id: str
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class Staff:
    """A command-centre user: role viewer | district_staff | admin; district a code."""

    username: str
    role: str
    district: str | None = None

    @classmethod
    def of(cls, user: Any) -> Staff:
        """From a logged-in user (models.User or anything with username, role, district)."""
        return cls(user.username, user.role, user.district)


Actor = Reporter | Staff


# -- the case, as far as permissions care ---------------------------------------------
@dataclass(frozen=True, slots=True)
class CaseFacts:
    id: str
    segment_id: str | None
    district: str | None
    assignee_id: str | None
    at: dt.datetime  # the case's time (see the module's docstring)
    holders: Sequence[Holder] = ()  # every assignment of the segment, any period
    fixer_id: str | None = None  # who sent the rectification awaiting verification
    chainage_m: float | None = None  # where along the segment (a merchant's frontage)
    finder_kind: str | None = None  # the kind of reporter who found it (evaluator, covert…)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    code: str  # "ok" or why not: not_responsible | same_person | not_permitted
    reason: str  # plain words, shown to the sender

    def __bool__(self) -> bool:
        return self.allowed


OK = Decision(True, "ok", "allowed")

# -- the table ------------------------------------------------------------------------
# action → who, in words (docs/security.md §4 prints this table; tests/test_permissions.py
# checks that every action here is decided and that the words match the rules below).
RESPONSIBLE = (
    "the case's assignee, and whoever holds the segment (or the frontage) at the case's time"
)
SUPERIOR = (
    "a road chief of the segment at the case's time, above the responsible chief and the fixer"
)
DISTRICT_STAFF = "district staff of the case's district"
DISTRICT_STAFF_NOT_INDEPENDENT = (
    "district staff of the case's district, unless an evaluator or covert checker found it"
)
ADMIN = "an admin"
EVALUATOR = "a registered evaluator (第三方测评)"


@dataclass(frozen=True, slots=True)
class Rule:
    who: tuple[str, ...]  # who may, in words
    never: tuple[str, ...]  # who may not, in words
    staff_only: bool = False


_STAFF = (DISTRICT_STAFF, ADMIN)
_STAFF_INDEPENDENT = (DISTRICT_STAFF_NOT_INDEPENDENT, ADMIN)
# A finding of an independent check (a third-party evaluator, a covert checker) weighs most
# in the district's weekly flags. The district's own staff closing it as invalid or as a
# duplicate, or merging it away, would take it out of their own ranking without anyone
# else deciding: that is an admin's decision (or a dispute's). They may still work it.
INDEPENDENT_KINDS = frozenset({"evaluator", "covert"})
_ENDS_A_FINDING = frozenset({"close_invalid", "close_duplicate", "merge"})
_NOT_CHIEFS = ("chiefs and other reporters", "viewers")
TABLE: dict[str, Rule] = {
    "rectify": Rule((RESPONSIBLE,), ("staff", "evaluators and covert checkers", "anyone else")),
    "request_extension": Rule((RESPONSIBLE,), ("staff", "anyone else")),
    "verify": Rule(
        (SUPERIOR, DISTRICT_STAFF, ADMIN, EVALUATOR),
        ("the person who rectified", "any other chief", "covert checkers", "viewers"),
    ),
    "comment": Rule(
        (RESPONSIBLE, SUPERIOR, DISTRICT_STAFF, ADMIN, EVALUATOR), ("viewers", "unrelated chiefs")
    ),
    "reassign": Rule(_STAFF, _NOT_CHIEFS, staff_only=True),
    "extend": Rule(_STAFF, _NOT_CHIEFS, staff_only=True),
    "suspend": Rule(_STAFF, _NOT_CHIEFS, staff_only=True),
    "close_invalid": Rule(_STAFF_INDEPENDENT, _NOT_CHIEFS, staff_only=True),
    "close_duplicate": Rule(_STAFF_INDEPENDENT, _NOT_CHIEFS, staff_only=True),
    "merge": Rule(_STAFF_INDEPENDENT, _NOT_CHIEFS, staff_only=True),
    "reopen": Rule(_STAFF, _NOT_CHIEFS, staff_only=True),
}
ACTIONS = tuple(TABLE)
STAFF_ONLY = frozenset(a for a, rule in TABLE.items() if rule.staff_only)

NON_CHIEF_LEVEL = 4  # partner units and merchants rank below every road chief (0 … 3)


def may(actor: Actor, action: str, case: CaseFacts) -> Decision:
    """Whether `actor` may do `action` to `case`, and why not in plain words."""
    if action not in TABLE:
        raise ValueError(f"unknown case action {action!r}; one of {', '.join(ACTIONS)}")
    if isinstance(actor, Staff):
        return _staff(actor, action, case)
    if action in STAFF_ONLY:
        return Decision(
            False,
            "not_permitted",
            f"only command-centre staff may {_words(action)} a case / 只有指挥中心人员可以操作",
        )
    if action in ("rectify", "request_extension"):
        return _responsible(actor, case)
    if action == "verify":
        return _verifier(actor, case)
    # comment
    if _responsible(actor, case) or _verifier(actor, case):
        return OK
    return _unrelated(actor, case)


def _words(action: str) -> str:
    return action.replace("_", " ")


def _staff(actor: Staff, action: str, case: CaseFacts) -> Decision:
    if action in ("rectify", "request_extension"):
        return Decision(
            False,
            "not_permitted",
            "staff do not rectify; the people responsible for the segment do / 整改由责任人完成",
        )
    if actor.role == "admin":
        return OK
    if actor.role == "district_staff":
        if actor.district is not None and actor.district == case.district:
            if action in _ENDS_A_FINDING and case.finder_kind in INDEPENDENT_KINDS:
                return Decision(
                    False,
                    "not_permitted",
                    f"case {case.id} was found by an independent check ({case.finder_kind}); "
                    f"only an admin may {_words(action)} it, or a dispute decide it "
                    "/ 第三方测评、暗访发现的问题只能由管理员作废或合并",
                )
            return OK
        return Decision(
            False,
            "not_permitted",
            f"case {case.id} is in district {case.district}, outside {actor.username}'s "
            f"district {actor.district} / 不在本区范围内",
        )
    return Decision(
        False,
        "not_permitted",
        f"{actor.username} is a {actor.role}: viewers may look, not change / 只读用户不能操作",
    )


def _current(case: CaseFacts) -> list[Holder]:
    return [h for h in case.holders if h.holds(case.at)]


def _covers(h: Holder, chainage_m: float | None) -> bool:
    """A merchant answers for their frontage only; everyone else for the whole segment."""
    if h.role != "merchant":
        return True
    return in_frontage(h.from_chainage_m, h.to_chainage_m, chainage_m) is not False


def _responsible(actor: Reporter, case: CaseFacts) -> Decision:
    if actor.id == case.assignee_id:
        return OK
    if any(h.person_id == actor.id and _covers(h, case.chainage_m) for h in _current(case)):
        return OK
    return Decision(
        False,
        "not_responsible",
        f"{actor.id} is not responsible for segment {case.segment_id} at "
        f"{case.at.isoformat(timespec='seconds')}; only its chiefs, partner unit or merchant "
        "may rectify it / 不是该路段的责任人",
    )


def _level(holders: Sequence[Holder], person: str | None) -> int | None:
    """The most senior post `person` holds among `holders` (road chiefs 0 … 3, others 4)."""
    levels = [
        h.level if h.role == "road_chief" and h.level is not None else NON_CHIEF_LEVEL
        for h in holders
        if h.person_id == person
    ]
    return min(levels) if levels else None


def _verifier(actor: Reporter, case: CaseFacts) -> Decision:
    if case.fixer_id is not None and actor.id == case.fixer_id:
        return Decision(
            False,
            "same_person",
            "the person who rectified a case cannot verify it; a supervisor or evaluator "
            "must / 整改人不能核查自己的整改",
        )
    if actor.kind == "evaluator":
        return OK
    current = _current(case)
    mine = _level([h for h in current if h.role == "road_chief"], actor.id)
    if mine is not None:
        # the responsible chief: the assignee's post, else the segment's most junior chief
        chiefs = [h.level for h in current if h.role == "road_chief" and h.level is not None]
        refs = [
            lvl
            for lvl in (_level(current, case.assignee_id), _level(current, case.fixer_id))
            if lvl is not None
        ] or ([max(chiefs)] if chiefs else [])
        if mine < min(refs):
            return OK
        return Decision(
            False,
            "not_permitted",
            f"{actor.id} is not above the responsible chief of segment {case.segment_id}; "
            "a superior chief, district staff or an evaluator must verify / "
            "须由上级路长、区级人员或第三方核查",
        )
    return _unrelated(actor, case)


def _unrelated(actor: Reporter, case: CaseFacts) -> Decision:
    return Decision(
        False,
        "not_permitted",
        f"{actor.id} has no part in case {case.id} (segment {case.segment_id}); only a superior "
        "chief of the segment, district staff or an evaluator may verify it / "
        "无权核查该案件",
    )


# -- when a fix was done: the claim, clamped ----------------------------------------------
@dataclass(frozen=True, slots=True)
class Clamp:
    claimed: dt.datetime
    used: dt.datetime
    earliest: dt.datetime | None
    latest: dt.datetime
    clamped: str | None = None  # None | "earliest" | "latest"
    why: str = field(default="")

    def as_json(self) -> dict[str, str | None]:
        return {
            "claimed": self.claimed.isoformat(),
            "used": self.used.isoformat(),
            "earliest": self.earliest.isoformat() if self.earliest else None,
            "latest": self.latest.isoformat(),
            "clamped": self.clamped,
            "why": self.why or None,
        }


def clamp_done_at(
    claimed: dt.datetime, earliest: dt.datetime | None, latest: dt.datetime, what: str
) -> Clamp:
    """A claimed `done_at` between `earliest` (the case's dispatch or reopening, or the
    rectification a verification checks) and `latest` (when the message was received).

    A phone's outbox may send a fix hours after it was done, so a done_at in that window is
    believed; one before the work could have begun or after the platform received it is not.
    """
    if earliest is not None and claimed < earliest:
        return Clamp(claimed, earliest, earliest, latest, "earliest", f"before the {what}")
    # a receipt before `earliest` (a message that waited in a queue) cannot pull it lower
    hi = latest if earliest is None else max(latest, earliest)
    if claimed > hi:
        return Clamp(claimed, hi, earliest, latest, "latest", "after it was received")
    return Clamp(claimed, claimed, earliest, latest)


def table_markdown() -> str:
    """The table as docs/security.md §4 prints it (a test keeps the two the same)."""
    lines = ["| action | who may | never |", "|---|---|---|"]
    for action, rule in TABLE.items():
        lines.append(f"| `{action}` | {'; '.join(rule.who)} | {'; '.join(rule.never)} |")
    return "\n".join(lines)
