"""Alertmanager-syntax matchers: parsing, matching, canonical spelling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.matchers import (
    Matcher,
    MatcherError,
    canonical,
    matches_all,
    parse_matcher,
    parse_matchers,
)


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('severity="critical"', "severity", "=", "critical"),
        ("severity=critical", "severity", "=", "critical"),
        (' team != "payments" ', "team", "!=", "payments"),
        ('team=~"pay.*"', "team", "=~", "pay.*"),
        ("team!~pay.*", "team", "!~", "pay.*"),
        ('responder="Sales Qualifier"', "responder", "=", "Sales Qualifier"),
        ('msg="say \\"hi\\""', "msg", "=", 'say "hi"'),
        ('path="a\\\\b"', "path", "=", "a\\b"),
        ('re=~"a\\.b"', "re", "=~", "a\\.b"),
        ('team=""', "team", "=", ""),
        ('{team="a"}', "team", "=", "a"),
    ],
)
def test_a_matcher_is_read(text: str, name: str, op: str, value: str) -> None:
    matcher = parse_matcher(text)
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)


def test_several_matchers_in_braces_or_separated_by_commas() -> None:
    expected = [Matcher("a", "=", "1"), Matcher("b", "!~", "x|y")]
    assert parse_matchers('{a="1", b!~"x|y"}') == expected
    assert parse_matchers("a=1,b!~x|y") == expected
    assert parse_matchers('a="1,2"') == [Matcher("a", "=", "1,2")]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "no matcher"),
        ("severity", "cannot read"),
        ("1abc=x", "cannot read"),
        ('team=~"pay["', "invalid regex"),
        ('team="open', "unterminated"),
        ('{team="a"', "closing"),
        ('a="1" b="2"', "expected ,"),
        ('a=x"y', "bare value"),
        ("a=1,b=2", "expected one matcher"),
    ],
)
def test_bad_matchers_are_refused_with_a_reason(text: str, complaint: str) -> None:
    with pytest.raises(MatcherError, match=complaint):
        parse_matcher(text)


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "warning"}, False),
        ('severity="critical"', {}, False),
        ('team!="payments"', {}, True),  # a missing label is ""
        ('team!="payments"', {"team": "payments"}, False),
        ('team=""', {}, True),
        ('team=""', {"team": "x"}, False),
        ('team=~"pay.*"', {"team": "payments"}, True),
        ('team=~"pay.*"', {"team": "repay"}, False),  # anchored at the start
        ('team=~"pay"', {"team": "payments"}, False),  # and at the end
        ('team!~"pay.*"', {"team": "growth"}, True),
        ('team!~"pay.*"', {"team": "payments"}, False),
        ('team=~"a|b"', {"team": "b"}, True),
        ('team=~"a|b"', {"team": "ab"}, False),
        ('m=~".*"', {"m": "line1\nline2"}, True),
    ],
)
def test_matching_follows_alertmanager(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


def test_no_matchers_match_everything_and_all_must_hold() -> None:
    assert matches_all([], {"a": "1"})
    both = parse_matchers('a="1",b=~"2|3"')
    assert matches_all(both, {"a": "1", "b": "3"})
    assert not matches_all(both, {"a": "1", "b": "4"})


def test_matchers_that_match_an_empty_label_are_known() -> None:
    assert parse_matcher('team!="x"').matches_empty
    assert parse_matcher('team=~".*"').matches_empty
    assert not parse_matcher('team="x"').matches_empty


_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True)
_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@given(name=_names, op=st.sampled_from(["=", "!="]), value=_values)
def test_the_canonical_spelling_reads_back_as_the_same_matcher(
    name: str, op: str, value: str
) -> None:
    matcher = Matcher(name, op, value)  # type: ignore[arg-type]
    assert parse_matcher(str(matcher)) == matcher
    assert canonical([matcher]) == [str(matcher)]


@given(name=_names, value=_values, other=_values)
def test_equal_and_not_equal_are_opposites(name: str, value: str, other: str) -> None:
    labels = {name: other}
    assert Matcher(name, "=", value).matches(labels) != Matcher(name, "!=", value).matches(labels)
