"""Rule-based control: input and output rules, parameter bounds, history trimming."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from kuwa.errors import ConfigError
from kuwa.executors.rules import OutputFilter, Rules, RulesError
from kuwa.schemas import GenerationParams, Message

U, A, S = "user", "assistant", "system"

YAML = r"""
# an example like docs/rules.md's (that page's own are tested at the end)
input:
  - match: {keyword: "password"}
    action: block
    message: "Please do not share passwords."
  - match: {regex: "\\b\\d{16}\\b"}
    action: overwrite
    replace: "[card number removed]"
  - match: {keyword: "lawsuit"}
    action: warn
    message: "Legal questions go to the legal team."
output:
  - match: {keyword: "internal-codename"}
    action: block
    message: "The answer was stopped by a content rule."
  - match: {regex: "sk-[A-Za-z0-9]{20,}"}
    action: overwrite
    replace: "[redacted]"
parameters:
  max_tokens: {max: 2048}
  temperature: {min: 0.0, max: 1.0}
max_input_tokens: 3000
"""

TOML = r"""
max_input_tokens = 3000

[[input]]
match = {keyword = "password"}
action = "block"
message = "Please do not share passwords."

[[input]]
match = {regex = '\b\d{16}\b'}
action = "overwrite"
replace = "[card number removed]"

[[input]]
match = {keyword = "lawsuit"}
action = "warn"
message = "Legal questions go to the legal team."

[[output]]
match = {keyword = "internal-codename"}
action = "block"
message = "The answer was stopped by a content rule."

[[output]]
match = {regex = 'sk-[A-Za-z0-9]{20,}'}
action = "overwrite"
replace = "[redacted]"

[parameters]
max_tokens = {max = 2048}
temperature = {min = 0.0, max = 1.0}
"""


@pytest.fixture(params=["rules.yaml", "rules.yml", "rules.toml"])
def rules(request: pytest.FixtureRequest, tmp_path: Path) -> Rules:
    path = tmp_path / request.param
    path.write_text(TOML if path.suffix == ".toml" else YAML, encoding="utf-8")
    return Rules.load(path)


def output_rules(*rules: dict[str, Any]) -> Rules:
    return Rules.from_dict({"output": list(rules)})


def stream(f: OutputFilter, pieces: Sequence[str]) -> str:
    return "".join(f.feed(p) for p in pieces) + f.finish()


def one_char_at_a_time(rules: Rules, text: str) -> tuple[str, OutputFilter]:
    f = rules.output_filter()
    return stream(f, list(text)), f


# --- files ----------------------------------------------------------------------------------
def test_yaml_and_toml_files_are_equivalent(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(YAML, encoding="utf-8")
    (tmp_path / "r.toml").write_text(TOML, encoding="utf-8")
    a, b = Rules.load(tmp_path / "r.yaml"), Rules.load(tmp_path / "r.toml")
    assert a.input == b.input and a.output == b.output
    assert a.parameters == b.parameters
    assert a.max_input_tokens == b.max_input_tokens == 3000
    assert len(a.input) == 3 and len(a.output) == 2


def test_empty_rules_change_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing yet\n", encoding="utf-8")
    for rules in (Rules.empty(), Rules.from_dict({}), Rules.load(tmp_path / "empty.yaml")):
        msgs = (Message(U, "password 1234567812345678"),)
        assert rules.check_input(msgs).messages == msgs
        assert rules.bound(GenerationParams(temperature=2.0)) == GenerationParams(temperature=2.0)
        assert rules.trim(msgs, lambda m: 10**9) == msgs
        assert one_char_at_a_time(rules, "internal-codename")[0] == "internal-codename"
        assert set(rules.counters().values()) == {0}


# --- input ----------------------------------------------------------------------------------
def test_input_block_on_the_last_user_message(rules: Rules) -> None:
    decision = rules.check_input([Message(U, "hello"), Message(U, "my PASSWORD is hunter2")])
    assert decision.blocked == "Please do not share passwords."
    assert rules.counters()["input.block"] == 1


def test_input_rules_look_at_the_last_user_message_by_default(rules: Rules) -> None:
    msgs = [Message(S, "password"), Message(U, "my password"), Message(A, "ok"), Message(U, "hi")]
    decision = rules.check_input(msgs)
    assert decision.blocked is None
    assert decision.messages == tuple(msgs)


def test_input_overwrite(rules: Rules) -> None:
    decision = rules.check_input([Message(U, "cards 1234567812345678 and 8765432187654321")])
    assert decision.blocked is None
    assert decision.messages == (
        Message(U, "cards [card number removed] and [card number removed]"),
    )
    assert decision.warnings == []
    assert rules.counters()["input.overwrite"] == 2


def test_input_warn_passes_the_message_with_a_warning(rules: Rules) -> None:
    msgs = (Message(U, "a Lawsuit, another lawsuit"),)
    decision = rules.check_input(msgs)
    assert decision.blocked is None
    assert decision.messages == msgs
    assert decision.warnings == ["Legal questions go to the legal team."]
    assert rules.counters()["input.warn"] == 1


def test_input_scope_all_checks_every_user_message() -> None:
    rules = Rules.from_dict(
        {
            "input": [
                {"match": {"keyword": "x"}, "action": "overwrite", "replace": "y", "scope": "all"},
                {"match": {"keyword": "bad"}, "action": "block", "scope": "all"},
            ]
        }
    )
    msgs = [Message(S, "x"), Message(U, "x1"), Message(A, "x2"), Message(U, "x3")]
    decision = rules.check_input(msgs)
    assert decision.messages == (
        Message(S, "x"),
        Message(U, "y1"),
        Message(A, "x2"),
        Message(U, "y3"),
    )
    blocked = rules.check_input([Message(U, "bad"), Message(A, "?"), Message(U, "fine")])
    assert blocked.blocked == "Your message was blocked by a content rule."


def test_input_rules_run_in_order() -> None:
    rules = Rules.from_dict(
        {
            "input": [
                {"match": {"keyword": "secret"}, "action": "overwrite", "replace": "[x]"},
                {"match": {"keyword": "secret"}, "action": "block"},
            ]
        }
    )
    decision = rules.check_input([Message(U, "a secret")])
    assert decision.blocked is None
    assert decision.messages == (Message(U, "a [x]"),)


def test_case_sensitive_matching_when_asked() -> None:
    rules = Rules.from_dict(
        {"input": [{"match": {"keyword": "Bob", "case_sensitive": True}, "action": "block"}]}
    )
    assert rules.check_input([Message(U, "bob")]).blocked is None
    assert rules.check_input([Message(U, "Bob")]).blocked is not None


def test_keyword_replace_is_literal_and_regex_replace_may_use_groups() -> None:
    rules = Rules.from_dict(
        {
            "input": [
                {"match": {"keyword": "a.b"}, "action": "overwrite", "replace": r"\1\n"},
                {"match": {"regex": r"(\d{4})\d{8}(\d{4})"}, "action": "overwrite",
                 "replace": r"\1********\2"},
            ]
        }
    )  # fmt: skip
    decision = rules.check_input([Message(U, "a.b axb 1234567812345678")])
    assert decision.messages == (Message(U, r"\1\n axb 1234********5678"),)


# --- output ---------------------------------------------------------------------------------
def test_output_block_emits_the_text_before_the_match(rules: Rules) -> None:
    out, f = one_char_at_a_time(rules, "Sure. The Internal-Codename is Falcon and more")
    assert out == "Sure. The "
    assert f.blocked == "The answer was stopped by a content rule."
    assert f.feed("more text") == "" and f.finish() == ""
    assert rules.counters()["output.block"] == 1


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 100])
def test_blocked_keyword_split_across_chunks_never_reaches_the_client(size: int) -> None:
    rules = output_rules({"match": {"keyword": "forbidden"}, "action": "block"})
    text = "This is the forbidden word, and text after it."
    f = rules.output_filter()
    emitted = []
    for i in range(0, len(text), size):
        emitted.append(f.feed(text[i : i + size]))
        assert "forbidden" not in "".join(emitted)
    emitted.append(f.finish())
    assert "".join(emitted) == "This is the "
    assert f.blocked == "The answer was stopped by a content rule."


def test_keyword_holdback_is_its_length_less_one() -> None:
    f = output_rules({"match": {"keyword": "abcd"}, "action": "block"}).output_filter()
    assert f.feed("hello abc") == "hello "
    assert f.feed("x") == "a"
    assert f.feed("") == ""
    assert f.finish() == "bcx"


def test_output_overwrite_of_a_keyword_one_char_at_a_time() -> None:
    rules = output_rules({"match": {"keyword": "Acme"}, "action": "overwrite", "replace": "ACME"})
    out, f = one_char_at_a_time(rules, "acme makes Acme things; aCmE!")
    assert out == "ACME makes ACME things; ACME!"
    assert f.blocked is None
    assert rules.counters()["output.overwrite"] == 3


def test_regex_overwrite_in_a_stream(rules: Rules) -> None:
    key = "sk-" + "a1B2" * 10
    text = f"Your key is {key}. Keep {key[:-5]}x safe"
    for size in (1, 4, 9, 1000):
        f = rules.output_filter()
        out = stream(f, [text[i : i + size] for i in range(0, len(text), size)])
        assert out == "Your key is [redacted]. Keep [redacted] safe"
        assert "sk-" not in out


def test_regex_match_at_the_very_end_is_replaced_on_finish(rules: Rules) -> None:
    out, _ = one_char_at_a_time(rules, "key: sk-" + "z" * 25)
    assert out == "key: [redacted]"


def test_regex_holdback_follows_the_window() -> None:
    rules = output_rules(
        {"match": {"regex": r"\d{3}-\d{4}"}, "action": "overwrite", "replace": "#", "window": 8}
    )
    f = rules.output_filter()
    assert f.feed("call 555-12") == "call"  # 7 characters held back
    assert f.feed("34 and then") == " # a"
    assert f.finish() == "nd then"


def test_a_growing_regex_match_waits_for_its_end() -> None:
    rules = output_rules({"match": {"regex": r"x+"}, "action": "overwrite", "replace": "X"})
    f = rules.output_filter()
    emitted = f.feed("a" * 100)
    for _ in range(30):
        emitted += f.feed("x")
        assert "x" not in emitted
    emitted += f.feed("b" * 100)
    assert emitted == "a" * 100 + "X" + "b" * 37
    assert f.finish() == "b" * 63


def test_a_match_longer_than_its_window_is_replaced_in_pieces() -> None:
    rules = output_rules(
        {"match": {"regex": r"x+"}, "action": "overwrite", "replace": "X", "window": 4}
    )
    out, _ = one_char_at_a_time(rules, "a" + "x" * 10 + "b")
    assert out == "a" + "X" * 3 + "b"  # 10 x's, replaced window by window


def test_any_chunking_gives_the_same_answer_as_one_chunk(rules: Rules) -> None:
    text = "Mix sk-" + "k" * 24 + " with SK-" + "Q" * 30 + "! and ok. " * 3 + "internal-codename"
    f = rules.output_filter()
    whole = stream(f, [text])
    assert whole == "Mix [redacted] with [redacted]! and ok. ! and ok. ! and ok. "
    rng = random.Random(7)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 20)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        f = rules.output_filter()
        assert stream(f, pieces) == whole
        assert f.blocked == "The answer was stopped by a content rule."


def test_output_warn_passes_the_text_and_counts_once() -> None:
    rules = output_rules({"match": {"keyword": "maybe"}, "action": "warn", "message": "unsure"})
    out, f = one_char_at_a_time(rules, "maybe yes, maybe no")
    assert out == "maybe yes, maybe no"
    assert f.warnings == ["unsure"]
    assert f.blocked is None
    assert rules.counters()["output.warn"] == 1


def test_block_wins_over_an_overwrite_at_the_same_place() -> None:
    rules = output_rules(
        {"match": {"keyword": "bad"}, "action": "overwrite", "replace": "good"},
        {"match": {"keyword": "bad word"}, "action": "block"},
    )
    out, f = one_char_at_a_time(rules, "a bad idea, a bad word")
    assert out == "a good idea, a "
    assert f.blocked is not None


def test_overwrite_text_is_not_matched_again() -> None:
    rules = output_rules({"match": {"keyword": "a"}, "action": "overwrite", "replace": "aa"})
    out, _ = one_char_at_a_time(rules, "banana")
    assert out == "baanaanaa"


def test_filters_are_independent_and_counters_add_up(rules: Rules) -> None:
    f1, f2 = rules.output_filter(), rules.output_filter()
    assert f1.feed("internal-codename") == ""  # a block acts at once: the model can stop
    assert stream(f2, ["plain text"]) == "plain text"
    assert f1.blocked is not None and f2.blocked is None
    rules.check_input([Message(U, "password")])
    rules.check_input([Message(U, "lawsuit 1234567812345678")])
    rules.bound(GenerationParams(temperature=5.0, max_tokens=10_000))
    assert rules.counters() == {
        "input.block": 1,
        "input.warn": 1,
        "input.overwrite": 1,
        "input.trimmed": 0,
        "output.block": 1,
        "output.warn": 0,
        "output.overwrite": 0,
        "parameters.clamped": 2,
        "parameters.defaulted": 0,
    }


# --- parameters -----------------------------------------------------------------------------
def test_parameters_are_clamped_into_bounds(rules: Rules) -> None:
    params = GenerationParams(temperature=1.7, max_tokens=9000, stop=("x",), seed=3)
    assert rules.bound(params) == GenerationParams(
        temperature=1.0, max_tokens=2048, stop=("x",), seed=3
    )
    assert rules.counters()["parameters.clamped"] == 2


def test_parameters_within_bounds_are_kept(rules: Rules) -> None:
    params = GenerationParams(temperature=0.5, max_tokens=100)
    assert rules.bound(params) == params
    assert rules.counters()["parameters.clamped"] == 0


def test_unset_max_tokens_gets_the_max_and_unset_temperature_stays_unset(rules: Rules) -> None:
    assert rules.bound(GenerationParams()) == GenerationParams(max_tokens=2048)
    assert rules.counters()["parameters.defaulted"] == 1


def test_lower_bounds() -> None:
    rules = Rules.from_dict({"parameters": {"top_p": {"min": 0.5}, "max_tokens": {"min": 16}}})
    assert rules.bound(GenerationParams(top_p=0.1, max_tokens=1)) == GenerationParams(
        top_p=0.5, max_tokens=16
    )
    assert rules.bound(GenerationParams()) == GenerationParams()


# --- trimming -------------------------------------------------------------------------------
def chars(messages: Sequence[Message]) -> int:
    return sum(len(m.content) for m in messages)


def test_trim_drops_the_oldest_turns_and_keeps_system_and_last() -> None:
    rules = Rules.from_dict({"max_input_tokens": 12})
    msgs = [
        Message(S, "sys"),
        Message(U, "u1u1"),
        Message(A, "a1a1"),
        Message(U, "u2"),
        Message(A, "a2"),
        Message(U, "last"),
    ]
    assert rules.trim(msgs, chars) == (
        Message(S, "sys"),
        Message(U, "u2"),
        Message(A, "a2"),
        Message(U, "last"),
    )
    assert rules.counters()["input.trimmed"] == 1


def test_trim_does_not_leave_history_starting_with_an_assistant_turn() -> None:
    rules = Rules.from_dict({"max_input_tokens": 10})
    msgs = [Message(U, "u1u1u1"), Message(A, "a1"), Message(U, "u2"), Message(U, "last")]
    assert rules.trim(msgs, chars) == (Message(U, "u2"), Message(U, "last"))


def test_trim_never_drops_the_last_message_or_system() -> None:
    rules = Rules.from_dict({"max_input_tokens": 1})
    msgs = [Message(S, "system"), Message(U, "old"), Message(A, "reply"), Message(U, "too long")]
    assert rules.trim(msgs, chars) == (Message(S, "system"), Message(U, "too long"))


def test_trim_within_the_limit_changes_nothing() -> None:
    rules = Rules.from_dict({"max_input_tokens": 100})
    msgs = (Message(U, "a"), Message(A, "b"), Message(U, "c"))
    assert rules.trim(msgs, chars) == msgs
    assert rules.counters()["input.trimmed"] == 0


# --- bad files ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([1, 2], "must be a mapping"),
        ({"inputs": []}, "unknown key 'inputs'"),
        ({"input": {"match": {}}}, "input must be a list"),
        ({"input": ["block"]}, "input rule 1: a rule must be a mapping"),
        ({"output": [{"match": {"keyword": "x"}, "action": "drop"}]}, "output rule 1: action"),
        ({"output": [{"action": "block"}]}, "output rule 1: match must be"),
        ({"output": [{"match": {"keyword": "x", "regex": "y"}, "action": "block"}]}, "match"),
        ({"output": [{"match": {"word": "x"}, "action": "block"}]}, "match must be"),
        ({"output": [{"match": {"keyword": ""}, "action": "block"}]}, "non-empty"),
        (
            {
                "output": [
                    {"match": {"keyword": "ok"}, "action": "block"},
                    {"match": {"regex": "a(b"}, "action": "block"},
                ]
            },
            "output rule 2: invalid regex 'a(b'",
        ),
        ({"input": [{"match": {"keyword": "x"}, "action": "overwrite"}]}, "needs replace"),
        ({"input": [{"match": {"keyword": "x"}, "action": "block", "replace": ""}]}, "replace"),
        (
            {"input": [{"match": {"regex": "x"}, "action": "overwrite", "replace": r"\2"}]},
            "input rule 1: invalid replace",
        ),
        ({"input": [{"match": {"keyword": "x"}, "action": "warn", "scope": "any"}]}, "scope"),
        ({"input": [{"match": {"keyword": "x"}, "action": "warn", "window": 3}]}, "unknown key"),
        ({"output": [{"match": {"keyword": "x"}, "action": "warn", "window": 3}]}, "regex rules"),
        ({"output": [{"match": {"regex": "x"}, "action": "warn", "window": 0}]}, "window"),
        ({"output": [{"match": {"keyword": "x"}, "action": "warn", "message": 3}]}, "message"),
        (
            {"output": [{"match": {"keyword": "x", "case_sensitive": "yes"}, "action": "warn"}]},
            "case_sensitive",
        ),
        ({"parameters": {"top_k": {"max": 3}}}, "unknown key 'top_k'"),
        ({"parameters": {"temperature": 1}}, "parameters.temperature must be a mapping"),
        ({"parameters": {"temperature": {"max": "high"}}}, "must be a number"),
        ({"parameters": {"temperature": {"min": 1, "max": 0.5}}}, "more than max"),
        ({"parameters": {"max_tokens": {"max": 10.5}}}, "whole number"),
        ({"max_input_tokens": 0}, "max_input_tokens"),
        ({"max_input_tokens": "lots"}, "max_input_tokens"),
    ],
)
def test_bad_rules_give_a_clear_error(data: Any, words: str) -> None:
    with pytest.raises(RulesError) as info:
        Rules.from_dict(data)
    assert words in str(info.value)


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("input: [\n", encoding="utf-8")
    with pytest.raises(RulesError, match=r"bad\.yaml: not valid YAML"):
        Rules.load(bad_yaml)
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("input = [\n", encoding="utf-8")
    with pytest.raises(RulesError, match=r"bad\.toml: not valid TOML"):
        Rules.load(bad_toml)
    bad_rule = tmp_path / "rule.yml"
    bad_rule.write_text("output:\n  - match: {regex: '('}\n    action: block\n", encoding="utf-8")
    with pytest.raises(RulesError, match=r"rule\.yml: output rule 1: invalid regex"):
        Rules.load(bad_rule)
    with pytest.raises(RulesError, match=r"\.yaml, \.yml or \.toml"):
        Rules.load(tmp_path / "rules.json")
    with pytest.raises(RulesError, match="cannot read"):
        Rules.load(tmp_path / "missing.yaml")


def test_rules_error_is_a_config_error() -> None:
    assert issubclass(RulesError, ConfigError)


# --- docs/rules.md --------------------------------------------------------------------------
RULES_DOC = Path(__file__).resolve().parent.parent / "docs" / "rules.md"


def documented_files() -> dict[str, str]:
    """The example rule files of docs/rules.md by language (its ```yaml and ```toml blocks)."""
    text = RULES_DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"^```(yaml|toml)\n(.*?)^```", text, re.S | re.M)
    assert sorted(lang for lang, _ in blocks) == ["toml", "yaml"], "one example of each"
    return dict(blocks)


def test_the_documented_example_files_parse_agree_and_do_what_the_page_says(
    tmp_path: Path,
) -> None:
    files = documented_files()
    loaded = []
    for lang, body in files.items():
        path = tmp_path / f"rules.{lang}"
        path.write_text(body, encoding="utf-8")
        loaded.append(Rules.load(path))
    a, b = loaded
    assert a.input == b.input and a.output == b.output and a.parameters == b.parameters
    assert a.max_input_tokens == b.max_input_tokens == 3000
    assert [r.action for r in a.input] == ["block", "overwrite", "warn"]
    assert [r.action for r in a.output] == ["block", "overwrite"]
    for rules in loaded:
        blocked = rules.check_input((Message(U, "my PASSWORD is hunter2"),))
        assert blocked.blocked == "Please do not share passwords."
        card = (Message(U, "card 1234567812345678"), Message(A, "ok"), Message(U, "thanks"))
        assert rules.check_input(card).messages[0].content == "card [card number removed]"
        key = "sk-" + "A1" * 15
        assert one_char_at_a_time(rules, f"use {key} now")[0] == "use [redacted] now"
        text, f = one_char_at_a_time(rules, "it is internal-codename X")
        assert text == "it is " and f.blocked == "The answer was stopped by a content rule."
        bounded = rules.bound(GenerationParams(temperature=1.7))
        assert bounded == GenerationParams(temperature=1.0, max_tokens=2048)


def test_the_documented_error_is_what_a_bad_file_gets(tmp_path: Path) -> None:
    """docs/rules.md quotes the message of a bad action: keep the quote true."""
    quoted = re.search(r"\(`(rules\.yaml: input rule 2: [^`]*)`\)", RULES_DOC.read_text("utf-8"))
    assert quoted is not None
    path = tmp_path / "rules.yaml"
    path.write_text(
        "input:\n  - match: {keyword: a}\n    action: warn\n"
        "  - match: {keyword: b}\n    action: drop\n",
        encoding="utf-8",
    )
    with pytest.raises(RulesError) as caught:
        Rules.load(path)
    assert caught.value.message.replace(str(path), "rules.yaml") == " ".join(
        quoted.group(1).split()
    )
