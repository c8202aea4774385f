"""Report payload validation: every bad input gets a reason in plain words."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from roadwatch.categories import load_categories
from roadwatch.ingest.payloads import ReportRules, decode_json, message_id_of, validate_report
from tests.support.examples import contract_example

NOW = dt.datetime(2026, 11, 23, 1, 20, tzinfo=dt.UTC)
RULES = ReportRules(
    categories=load_categories().codes,
    max_note_chars=2000,
    observed_window=dt.timedelta(days=7),
    future_skew=dt.timedelta(minutes=10),
)


def example(**changes: Any) -> dict[str, Any]:
    """docs/protocol.md 2.1's example, verbatim (its id and time), against a fixed clock."""
    fixed = {
        "report_id": "0b9f7c1e-3c53-4a53-9a1f-6f0d7b0a1a42",
        "observed_at": "2026-11-23T09:15:02+08:00",
    }
    return contract_example(**{**fixed, **changes})


def check(body: Any, topic_reporter: str | None = "zz-jinshui-0421") -> list[tuple[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    data, errors = decode_json(raw, 65536)
    if errors:
        return [(e.field, e.code) for e in errors]
    report, errors = validate_report(data, RULES, NOW, topic_reporter)
    assert (report is None) == bool(errors)
    for e in errors:  # a sentence that names what is wrong
        assert e.field.split(".")[0].rstrip("s") in e.message or e.field == "payload"
    return [(e.field, e.code) for e in errors]


def test_contract_example_is_valid() -> None:
    data, _ = decode_json(json.dumps(example()).encode(), 65536)
    report, errors = validate_report(data, RULES, NOW, "zz-jinshui-0421")
    assert errors == []
    assert report is not None
    assert report.observed_at == dt.datetime(2026, 11, 23, 1, 15, 2, tzinfo=dt.UTC)
    assert report.crs == "GCJ02" and report.severity == 2 and len(report.photos) == 1


def test_defaults_and_unknown_fields() -> None:
    data, _ = decode_json(
        json.dumps(example(crs=..., severity=..., future_field={"x": 1})).encode(), 65536
    )
    report, errors = validate_report(data, RULES, NOW, None)
    assert errors == [] and report is not None
    assert report.crs == "WGS84" and report.severity == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"v":1,', [("payload", "invalid_json")]),
        (b"\xff\xfe\x00bad", [("payload", "not_utf8")]),
        (b'{"v":1, "lat": NaN}', [("payload", "invalid_json")]),
        (b"[1,2]", [("payload", "invalid_type")]),
        (b'"just text"', [("payload", "invalid_type")]),
        (example(v=2), [("v", "unsupported_version")]),
        (example(report_id="not-a-uuid"), [("report_id", "invalid_uuid")]),
        (example(report_id=...), [("report_id", "required")]),
        (example(lat="34.7"), [("lat", "invalid_type")]),
        (example(lat=True), [("lat", "invalid_type")]),
        (example(lat=134.7), [("lat", "out_of_range")]),
        (example(lon=-190), [("lon", "out_of_range")]),
        (example(lat=None, lon=None), [("lat", "required")]),
        (example(lon=None), [("lon", "required")]),
        (example(crs="EPSG:3857"), [("crs", "unknown_crs")]),
        (example(category="X9999"), [("category", "invalid")]),
        (example(category="E9999"), [("category", "unknown_category")]),
        (example(category=...), [("category", "required")]),
        (example(severity=4), [("severity", "out_of_range")]),
        (example(severity=2.5), [("severity", "invalid_type")]),
        (example(note="路" * 2001), [("note", "too_long")]),
        (example(photos=["abc"]), [("photos.0", "invalid")]),
        (example(photos="abc"), [("photos", "invalid_type")]),
        (example(observed_at="yesterday"), [("observed_at", "invalid_time")]),
        (example(observed_at="2026-11-23T09:15:02"), [("observed_at", "missing_offset")]),
        (example(observed_at="2026-11-23T09:45:00+08:00"), [("observed_at", "in_future")]),
        (example(observed_at="2026-11-01T09:15:02+08:00"), [("observed_at", "too_old")]),
        (example(reporter_id="zz-other-1"), [("reporter_id", "reporter_mismatch")]),
        (example(reporter_id="bad id with spaces"), [("reporter_id", "invalid")]),
        (example(accuracy_m=-1), [("accuracy_m", "out_of_range")]),
        (example(heading_deg=361), [("heading_deg", "out_of_range")]),
    ],
)
def test_bad_payloads_are_rejected_with_reasons(body: Any, expected: list[tuple[str, str]]) -> None:
    assert check(body) == expected


@pytest.mark.parametrize("written", ["2026-11-23T01:15:02Z", "2026-11-23t01:15:02z"])
def test_rfc_3339_utc_times_in_either_case(written: str) -> None:
    assert check(example(observed_at=written)) == []


def test_too_large_payload() -> None:
    data, errors = decode_json(b"x" * 70_000, 65536)
    assert data is None
    assert [(e.field, e.code) for e in errors] == [("payload", "too_large")]
    assert "70,000 bytes" in errors[0].message


def test_several_errors_are_all_reported() -> None:
    codes = check(example(severity=9, category="E9999", lat=99))
    assert ("severity", "out_of_range") in codes
    assert ("category", "unknown_category") in codes
    assert ("lat", "out_of_range") in codes


def test_segment_hint_alone_is_enough() -> None:
    assert check(example(lat=None, lon=None, segment_hint="ZZ-JS-0001")) == []


# -- hostile input found in the contract audit ---------------------------------------------
def _raw(body: dict[str, Any], old: str, new: str) -> bytes:
    raw = json.dumps(body, ensure_ascii=False)
    assert old in raw
    return raw.replace(old, new).encode()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # nested deeper than any parser allows: a plain invalid_json, not an internal error
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, [("payload", "invalid_json")]),
        (b"[" * 30000 + b"]" * 30000, [("payload", "invalid_json")]),
        # text PostgreSQL cannot store, or that is not text at all
        (_raw(example(note="x"), '"x"', '"a\\u0000b"'), [("note", "invalid_text")]),
        (_raw(example(note="x"), '"x"', '"\\ud800"'), [("note", "invalid_text")]),
        (_raw(example(), '"v": 1', '"v": 1, "extra\\u0000": 1'), [("payload", "invalid_text")]),
        # times a datetime cannot hold once converted to UTC
        (example(observed_at="0001-01-01T00:00:00+14:00"), [("observed_at", "out_of_range")]),
        (example(observed_at="9999-12-31T23:59:59-14:00"), [("observed_at", "out_of_range")]),
        # a whole number, just far too big
        (example(severity=10**30), [("severity", "out_of_range")]),
        (example(v=10**30), [("v", "out_of_range")]),
    ],
)
def test_hostile_payloads_are_rejected_in_plain_words(
    raw: Any, expected: list[tuple[str, str]]
) -> None:
    assert check(raw) == expected


def test_unstorable_text_is_named_with_its_path() -> None:
    data, errors = decode_json(_raw(example(photos=["x"]), '"x"', '"\\u0000"'), 65536)
    assert [(e.field, e.code) for e in errors] == [("photos.0", "invalid_text")]
    # the value comes back with the error, so the client's id can be echoed in the ack
    assert message_id_of(data) == example()["report_id"]
    assert message_id_of({"report_id": "a\u0000b"}) is None
    assert "NUL" in errors[0].message


def test_a_utf8_byte_order_mark_is_ignored() -> None:
    """RFC 8259 lets a parser ignore a BOM; some Windows tools always write one."""
    raw = b"\xef\xbb\xbf" + json.dumps(example(), ensure_ascii=False).encode()
    data, errors = decode_json(raw, 65536)
    assert errors == [] and data["report_id"] == example()["report_id"]


def test_null_means_not_given_for_every_optional_field() -> None:
    """The contract's own example sends `"segment_hint": null`; null is absent for all."""
    body = example(
        crs=None, severity=None, photos=None, note=None, accuracy_m=None, heading_deg=None
    )
    data, _ = decode_json(json.dumps(body).encode(), 65536)
    report, errors = validate_report(data, RULES, NOW, "zz-jinshui-0421")
    assert errors == [] and report is not None
    assert (report.crs, report.severity, report.photos) == ("WGS84", 1, ())


def test_photo_hashes_in_capitals_are_the_same_hashes() -> None:
    digest = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
    data, _ = decode_json(json.dumps(example(photos=[digest])).encode(), 65536)
    report, errors = validate_report(data, RULES, NOW, "zz-jinshui-0421")
    assert errors == [] and report is not None
    assert report.photos == (digest.lower(),)


def test_a_bad_key_is_found_before_the_field_name_it_would_make() -> None:
    raw = b'{"v": 1, "extra": {"\\ud800": "a\\u0000b"}}'
    data, errors = decode_json(raw, 65536)
    assert [(e.field, e.code) for e in errors] == [("extra", "invalid_text")]
    assert errors[0].message.encode("utf-8")  # the error itself is storable text


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # `$` in a pattern also matches before a final newline
        ({"reporter_id": "zz-jinshui-0421\n"}, [("reporter_id", "invalid")]),
        ({"photos": ["a" * 64 + "\n"]}, [("photos.0", "invalid")]),
        ({"category": "E0504\n"}, [("category", "invalid")]),
    ],
)
def test_a_trailing_newline_is_not_part_of_an_id(
    changes: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert check(example(**changes), topic_reporter=None) == expected


def test_whole_numbers_written_with_a_fraction_are_whole_numbers() -> None:
    """docs/schemas/report.json says "integer", which JSON Schema (and JSON itself) takes
    as 2 or 2.0; phone JSON libraries that keep numbers as doubles write 2.0."""
    raw = _raw(example(severity=3), '"severity": 3', '"severity": 3.0')
    raw = raw.replace(b'"v": 1', b'"v": 1.0')
    data, errors = decode_json(raw, 65536)
    assert errors == [] and data["v"] == 1.0 and isinstance(data["severity"], float)
    report, errors = validate_report(data, RULES, NOW, "zz-jinshui-0421")
    assert errors == [] and report is not None
    assert report.severity == 3 and type(report.severity) is int
    # a fraction is still not a whole number, nor are text and true
    assert check(example(severity=2.5)) == [("severity", "invalid_type")]
    assert check(example(severity="2")) == [("severity", "invalid_type")]
    assert check(example(severity=True)) == [("severity", "invalid_type")]
    assert check(example(v=2.0)) == [("v", "unsupported_version")]
    assert check(example(severity=4.0)) == [("severity", "out_of_range")]
    assert check(example(severity=1e30)) == [("severity", "out_of_range")]
