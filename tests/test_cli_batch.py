"""``kuwa-cli batch`` in-process (click's CliRunner) against a real gateway and executors."""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from kuwa.cli import main
from kuwa.cli.batch import Progress
from kuwa.executors.debug import tokenize
from tests.stack import RedisServer, Stack, free_port

PROMPTS = ["Hello there", "How are you?", "", "   ", "Third one, 你好"]
"""Header-less file: the two blank lines are skipped, so three prompts on lines 1, 2, 5."""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway with an ``echo`` and a ``hist`` (history transform) debug executor."""
    folder: Path = tmp_path_factory.mktemp("batch")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.token = s.create_user()
        s.executor("echo", concurrency=32)
        s.executor("hist", transform="history", concurrency=32)
        s.gateway()
        yield s
    finally:
        s.stop()
        server.stop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("KUWA_")]:
        monkeypatch.delenv(name)


def batch(gw: Stack, *args: str, url: str | None = None, token: str | None = None) -> Result:
    argv = ["batch", *args, "--url", url or gw.base_url, "--token", token or gw.token]
    result = CliRunner().invoke(main, argv)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"kuwa-cli {' '.join(argv)} raised") from result.exception
    return result


def write_prompts(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def by_pair(recs: list[dict[str, Any]]) -> dict[tuple[int, str], dict[str, Any]]:
    pairs = Counter((r["index"], r["model"]) for r in recs)
    assert max(pairs.values()) == 1, f"duplicate pairs: {pairs}"
    return {(r["index"], r["model"]): r for r in recs}


def history_answers(prompts: list[str]) -> list[str]:
    """What the ``history`` transform answers, prompt after prompt, in one conversation."""
    turns: list[str] = []
    answers = []
    for prompt in prompts:
        turns.append(f"user: {prompt}")
        answer = " | ".join(turns)
        answers.append(answer)
        turns.append(f"assistant: {answer}")
    return answers


def test_two_models_one_line_per_pair_with_answers_usage_and_timing(
    gw: Stack, tmp_path: Path
) -> None:
    prompts = write_prompts(tmp_path / "prompts.txt", PROMPTS)
    out = tmp_path / "results.jsonl"
    result = batch(gw, str(prompts), "--model", "echo", "--model", "hist", "--out", str(out))
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stdout == ""
    assert "6 sent, 6 succeeded, 0 failed, 0 skipped" in result.stderr
    pairs = by_pair(records(out))
    assert set(pairs) == {(i, m) for i in range(3) for m in ("echo", "hist")}
    for index, (text, line) in enumerate([(PROMPTS[0], 1), (PROMPTS[1], 2), (PROMPTS[4], 5)]):
        echo, hist = pairs[(index, "echo")], pairs[(index, "hist")]
        assert echo["prompt"] == hist["prompt"] == text
        assert echo["line"] == hist["line"] == line
        assert echo["answer"] == text
        assert hist["answer"] == f"user: {text}"  # not chained: every prompt on its own
        for rec in (echo, hist):
            assert rec["error"] is None
            assert rec["finish_reason"] == "stop"
            n = len(tokenize(text))
            assert rec["usage"]["prompt_tokens"] == n
            assert rec["usage"]["completion_tokens"] == len(tokenize(rec["answer"]))
            assert 0 < rec["ttft_s"] <= rec["total_s"]


def test_chained_carries_each_models_own_history_in_file_order(gw: Stack, tmp_path: Path) -> None:
    texts = ["p1", "p2", "p3"]
    prompts = write_prompts(tmp_path / "prompts.txt", texts)
    out = tmp_path / "results.jsonl"
    args = [str(prompts), "-m", "hist", "-m", "echo", "--chained", "--out", str(out)]
    result = batch(gw, *args, "--concurrency", "4")
    assert result.exit_code == 0, result.stderr
    pairs = by_pair(records(out))
    expected = history_answers(texts)
    assert expected[2] == (
        "user: p1 | assistant: user: p1 | user: p2 | "
        "assistant: user: p1 | assistant: user: p1 | user: p2 | user: p3"
    )
    assert [pairs[(i, "hist")]["answer"] for i in range(3)] == expected
    assert [pairs[(i, "echo")]["answer"] for i in range(3)] == texts  # echo: the last prompt
    # The echo model's history held echo's answers: its prompt tokens grow with them.
    assert pairs[(2, "echo")]["usage"]["prompt_tokens"] == 5

    # Resume a chain: the saved (here: edited) answers are the history of what is missing.
    recs = [r for r in records(out) if not (r["model"] == "hist" and r["index"] > 0)]
    for r in recs:
        if r["model"] == "hist":
            r["answer"] = "EDITED"
    out.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    again = batch(gw, *args)
    assert again.exit_code == 0, again.stderr
    assert "4 of 6 pairs are already in" in again.stderr
    assert "2 sent" in again.stderr
    pairs = by_pair(records(out))
    assert pairs[(1, "hist")]["answer"] == "user: p1 | assistant: EDITED | user: p2"
    assert pairs[(2, "hist")]["answer"].startswith(
        "user: p1 | assistant: EDITED | user: p2 | assistant: user: p1 | assistant: EDITED"
    )


def test_rerun_sends_only_the_missing_pairs(gw: Stack, tmp_path: Path) -> None:
    texts = [f"prompt number {i}" for i in range(10)]
    prompts = write_prompts(tmp_path / "prompts.txt", texts)
    out = tmp_path / "results.jsonl"
    args = [str(prompts), "-m", "echo", "-m", "hist", "--out", str(out)]
    assert batch(gw, *args).exit_code == 0
    full = records(out)
    assert len(full) == 20
    # Drop four results and cut the last kept line in half (as if stopped while writing).
    kept = full[:15]
    text = "".join(json.dumps(r) + "\n" for r in kept) + json.dumps(full[15])[:20]
    out.write_text(text, encoding="utf-8")
    again = batch(gw, *args)
    assert again.exit_code == 0, again.stderr
    assert "15 of 20 pairs are already in" in again.stderr
    assert "5 sent, 5 succeeded, 0 failed, 15 skipped" in again.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[15] == json.dumps(full[15])[:20]  # the torn line stays, on its own line
    pairs = by_pair(records_skipping_torn(out))
    assert set(pairs) == {(i, m) for i in range(10) for m in ("echo", "hist")}
    for (index, model), rec in pairs.items():
        assert rec["answer"] == (texts[index] if model == "echo" else f"user: {texts[index]}")
    # Nothing left to do: nothing is sent and the file does not change.
    before = out.read_text(encoding="utf-8")
    third = batch(gw, *args)
    assert third.exit_code == 0
    assert "0 sent" in third.stderr and "20 skipped" in third.stderr
    assert out.read_text(encoding="utf-8") == before


def records_skipping_torn(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_failing_model_is_recorded_and_exits_1_then_retried(gw: Stack, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.txt", ["a", "b", "c"])
    out = tmp_path / "results.jsonl"
    args = [str(prompts), "-m", "echo", "-m", "no-such-model", "--out", str(out)]
    result = batch(gw, *args)
    assert result.exit_code == 1
    assert "3 of 6 requests failed" in result.stderr
    assert "run the same command again" in result.stderr
    pairs = by_pair(records(out))
    assert len(pairs) == 6
    for i in range(3):
        assert pairs[(i, "echo")]["error"] is None
        error = pairs[(i, "no-such-model")]["error"]
        assert "HTTP 404" in error and "'no-such-model' does not exist" in error
    again = batch(gw, *args)
    assert again.exit_code == 1
    assert "3 of 6 pairs are already in" in again.stderr  # the failed ones are tried again
    assert len(records(out)) == 9


def test_a_failure_mid_chain_stops_that_chain_only(gw: Stack, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.txt", ["p1", "/debug error boom", "p3"])
    out = tmp_path / "results.jsonl"
    result = batch(gw, str(prompts), "-m", "echo", "-m", "hist", "--chained", "--out", str(out))
    assert result.exit_code == 1
    pairs = by_pair(records(out))
    assert pairs[(0, "echo")]["error"] is None
    assert "asked to fail" in pairs[(1, "echo")]["error"]
    assert pairs[(1, "echo")]["answer"] == "boom"  # what streamed before the failure
    assert pairs[(2, "echo")]["error"].startswith("not sent: prompt 1 (line 2) failed")
    assert "4 of 6 requests failed" in result.stderr


def test_malformed_tsv_is_a_usage_error_with_the_line(gw: Stack, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.tsv"
    prompts.write_text("role\tcontent\nuser\tfine\nbot\toops\n", encoding="utf-8")
    out = tmp_path / "results.jsonl"
    result = batch(gw, str(prompts), "-m", "echo", "--out", str(out))
    assert result.exit_code == 2
    assert "Error: " in result.stderr and "line 3, column" in result.stderr
    assert not out.exists()


def test_tsv_and_json_prompts_use_only_user_rows(gw: Stack, tmp_path: Path) -> None:
    tsv = tmp_path / "prompts.tsv"
    tsv.write_text(
        "role\tmodel\tcontent\nuser\t\tq1\nassistant\techo\tignored\nuser\t\tq2\n",
        encoding="utf-8",
    )
    out = tmp_path / "tsv.jsonl"
    assert batch(gw, str(tsv), "-m", "echo", "--out", str(out)).exit_code == 0
    recs = sorted(records(out), key=lambda r: r["index"])
    assert [(r["index"], r["line"], r["answer"]) for r in recs] == [(0, 2, "q1"), (1, 4, "q2")]
    messages = [
        {"role": "user", "content": "j1"},
        {"role": "assistant", "model": "echo", "content": "ignored"},
        {"role": "user", "content": "j2"},
    ]
    js = tmp_path / "prompts.json"
    js.write_text(json.dumps({"messages": messages}, indent=1), encoding="utf-8")
    out = tmp_path / "json.jsonl"
    assert batch(gw, str(js), "-m", "echo", "--out", str(out)).exit_code == 0
    recs = sorted(records(out), key=lambda r: r["index"])
    assert [(r["index"], r["answer"]) for r in recs] == [(0, "j1"), (1, "j2")]


@pytest.mark.parametrize("concurrency", ["1", "4"])
def test_concurrency_one_and_four(gw: Stack, tmp_path: Path, concurrency: str) -> None:
    texts = [f"question {i}" for i in range(6)]
    prompts = write_prompts(tmp_path / "prompts.txt", texts)
    out = tmp_path / "results.jsonl"
    args = [str(prompts), "-m", "echo", "-m", "hist", "-c", concurrency, "--out", str(out)]
    result = batch(gw, *args)
    assert result.exit_code == 0, result.stderr
    pairs = by_pair(records(out))
    assert {k: v["answer"] for k, v in pairs.items() if k[1] == "echo"} == {
        (i, "echo"): t for i, t in enumerate(texts)
    }
    assert len(pairs) == 12


def test_unreachable_gateway_bad_token_and_missing_file(gw: Stack, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.txt", ["x"])
    out = tmp_path / "results.jsonl"
    down = f"http://127.0.0.1:{free_port()}"
    result = batch(gw, str(prompts), "-m", "echo", "--out", str(out), url=down)
    assert result.exit_code == 2
    assert f"cannot reach the Kuwa gateway at {down}" in result.stderr
    result = batch(gw, str(prompts), "-m", "echo", "--out", str(out), token="wrong")
    assert result.exit_code == 2
    assert "Error: the gateway at" in result.stderr
    result = batch(gw, str(tmp_path / "missing.txt"), "-m", "echo", "--out", str(out))
    assert result.exit_code == 2
    assert not out.exists()


def test_options_come_from_kuwa_variables(
    gw: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = write_prompts(tmp_path / "prompts.txt", ["from env"])
    out = tmp_path / "results.jsonl"
    monkeypatch.setenv("KUWA_URL", gw.base_url)
    monkeypatch.setenv("KUWA_TOKEN", gw.token)
    monkeypatch.setenv("KUWA_BATCH_MODEL", "echo hist")
    monkeypatch.setenv("KUWA_BATCH_OUT", str(out))
    result = CliRunner().invoke(main, ["batch", str(prompts)])
    assert result.exit_code == 0, result.output
    assert {r["model"] for r in records(out)} == {"echo", "hist"}


def test_another_prompt_file_into_the_same_output_is_refused(gw: Stack, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    first = write_prompts(tmp_path / "a.txt", ["one"])
    assert batch(gw, str(first), "-m", "echo", "--out", str(out)).exit_code == 0
    second = write_prompts(tmp_path / "b.txt", ["two"])
    result = batch(gw, str(second), "-m", "echo", "--out", str(out))
    assert result.exit_code == 2
    assert "another prompt file" in result.stderr


def test_progress_bar_on_a_terminal_and_lines_otherwise() -> None:
    tty = io.StringIO()
    bar = Progress(4, tty, tty=True, width=10)
    bar.update(True)
    bar.update(False)
    bar.close()
    assert tty.getvalue() == (
        "\r[##        ] 1/4 done, 0 failed\r[#####     ] 2/4 done, 1 failed\n"
    )
    plain = io.StringIO()
    lines = Progress(100, plain, tty=False)
    for _ in range(100):
        lines.update(True)
    assert len(plain.getvalue().splitlines()) == 11  # the first result, then each tenth
    assert plain.getvalue().endswith("100/100 done, 0 failed\n")
