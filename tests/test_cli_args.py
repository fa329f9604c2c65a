"""Words after an option still reach a command's LABEL/MATCHER positional, whichever
command it is (`relay.cli.args`), and `routes test` fills in what a rule adds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relay.cli.args import join_rest
from relay.cli.main import build_parser, main
from relay.clock import utcnow
from relay.store import SqliteStore
from tests.relay_process import alert_failures_to
from tests.test_settings_routes import BASE, GOOD_ROUTES

MONDAY_NIGHT = "2026-03-02T23:00:00Z"
RESPONDER = "cb364d8f-6e9c-48ed-b241-ac405da66337"


@pytest.mark.parametrize(
    ("argv", "dest", "words"),
    [
        (
            ["routes", "test", "rule=x", "--at", "T", "team=finops"],
            "labels",
            ["rule=x", "team=finops"],
        ),
        (["silences", "add", "--duration", "1h", "team=x", "a=b"], "items", ["team=x", "a=b"]),
        (["deliveries", "retry", "--sink", "am", "msg_1", "msg_2"], "ids", ["msg_1", "msg_2"]),
    ],
)
def test_words_after_an_option_join_the_command_s_positional(
    argv: list[str], dest: str, words: list[str]
) -> None:
    args, extra = build_parser().parse_known_args(argv)
    assert extra, "argparse leaves them over: the case join_rest is for"
    assert join_rest(args, extra)
    assert getattr(args, dest) == words


def test_an_option_left_over_is_not_joined() -> None:
    args, extra = build_parser().parse_known_args(["routes", "test", "--at", "T", "--nope"])
    assert extra == ["--nope"]
    assert not join_rest(args, extra)
    args, extra = build_parser().parse_known_args(["check-config", "stray"])
    assert not join_rest(args, extra)  # a command without such a positional


def test_an_unknown_word_is_still_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "stray"]) == 2
    assert "unrecognized arguments: stray" in capsys.readouterr().err


def _routes_config(tmp_path: Path) -> Path:
    path = tmp_path / "relay.yaml"
    text = BASE.replace(
        "    severity: critical\n",
        "    severity: critical\n  - name: burn\n    window: 5m\n"
        "    when: {credits_sum: {gt: 10}}\n    severity: warning\n"
        "    labels: {team: finops, tier: gold}\n",
        1,
    )
    quiet = (
        "  - name: nights\n    times: [{start: '22:00', end: '24:00'}]\n"
        f"responders:\n  {RESPONDER}: Sales Qualifier\n"
    )
    finops = (
        "  - name: finops-daytime\n    matchers: ['team=\"finops\"']\n"
        "    sinks: [payments]\n    mute_time_intervals: [nights]\n"
    )
    routes = GOOD_ROUTES.replace("routes:\n", "routes:\n" + finops, 1)
    path.write_text(text + quiet + routes, encoding="utf-8")
    return path


def test_routes_test_fills_in_the_rule_s_labels_and_the_responder_s_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_routes_config(tmp_path))
    argv = ["routes", "test", "-c", config, "rule=burn", f"responder_id={RESPONDER}"]
    # A label after --at is still a label, and a given label wins over the rule's.
    assert main([*argv, "--at", MONDAY_NIGHT, "tier=silver"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f'labels: rule="burn", responder_id="{RESPONDER}", tier="silver", '
        'team="finops", severity="warning", responder="Sales Qualifier"'
    )
    assert lines[1] == (
        'filled in from the configuration: team="finops", severity="warning", '
        'responder="Sales Qualifier"'
    )
    assert "route finops-daytime" in lines  # by the rule's team, not the default route
    assert "held back by finops-daytime (in nights): payments" in lines
    assert lines[-1] == "sinks reached: none"


def test_routes_test_without_a_configured_rule_fills_in_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_routes_config(tmp_path))
    assert main(["routes", "test", "-c", config, "rule=unknown", "--at", MONDAY_NIGHT]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == 'labels: rule="unknown"'
    assert not any(line.startswith("filled in") for line in lines)
    assert lines[-1] == "sinks reached: alerts"


def test_silences_add_takes_matchers_after_an_option(tmp_path: Path) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text(
        "sources:\n  - name: prod\n    api_key: k\n"
        f"store:\n  url: sqlite:///{tmp_path}/state.db\n"
        f"{alert_failures_to('http://127.0.0.1:9/unused')}"
    )
    argv = ["silences", "add", "-c", str(config), "rule=execution-failed"]
    assert main([*argv, "--duration", "1h", 'team=~"pay.*"']) == 0

    async def stored() -> list[str]:
        async with SqliteStore(tmp_path / "state.db") as store:
            [silence] = await store.list_silences(now=utcnow())
        return [str(m) for m in silence.matchers]

    assert asyncio.run(stored()) == ['rule="execution-failed"', 'team=~"pay.*"']
