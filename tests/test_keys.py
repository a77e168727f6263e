from __future__ import annotations

import pytest

from kuwa import keys


def test_every_name_is_prefixed_and_has_no_double_colon() -> None:
    names = [
        keys.queue_stream("echo"),
        keys.queue_executors("echo"),
        keys.queue_slots("echo"),
        keys.executor("host-1"),
        keys.job_channel("chatcmpl-1"),
        keys.job_transcript("chatcmpl-1"),
        keys.job_state("chatcmpl-1"),
        keys.job_cancel("chatcmpl-1"),
        keys.CANCEL_CHANNEL,
        keys.MODELS,
        keys.EXECUTORS,
        keys.KERNEL_LEADER,
        keys.MODEL_CONFIG,
        keys.session("abc"),
        keys.user_sessions(7),
        keys.login_failures("account", "0f0f"),
        keys.login_failures("ip", "127.0.0.1"),
    ]
    for name in names:
        assert name.startswith("kuwa:")
        assert "::" not in name
    assert len(set(names)) == len(names)


def _tag(name: str) -> str:
    return name[name.index("{") + 1 : name.index("}")]


def test_keys_of_one_job_share_a_hash_tag() -> None:
    job = "chatcmpl-abc"
    tags = {
        _tag(f(job))
        for f in (keys.job_channel, keys.job_transcript, keys.job_state, keys.job_cancel)
    }
    assert tags == {"job:chatcmpl-abc"}


def test_keys_of_one_queue_share_a_hash_tag() -> None:
    names = (
        keys.queue_stream("m"),
        keys.queue_executors("m"),
        keys.queue_slots("m"),
        keys.queue_ring("m"),
        keys.queue_backlogged("m"),
        keys.queue_backlog("m", "7"),
        keys.queue_standby("m"),
    )
    assert {_tag(name) for name in names} == {"q:m"}


@pytest.mark.parametrize("code", ["", "a b", "x{y}", "-lead", "a" * 129, "é"])
def test_invalid_access_codes_are_rejected(code: str) -> None:
    assert not keys.valid_access_code(code)
    with pytest.raises(ValueError):
        keys.queue_stream(code)


@pytest.mark.parametrize("code", ["echo", "gemini-pro", "Qwen/Qwen2.5-7B-Instruct", "llama3.1:8b"])
def test_realistic_access_codes_are_accepted(code: str) -> None:
    assert keys.valid_access_code(code)


def test_job_ids_cannot_smuggle_braces() -> None:
    with pytest.raises(ValueError):
        keys.job_channel("x}{y")


def test_scripts_build_a_jobs_keys_as_the_helpers_do() -> None:
    for key, helper in (("state", keys.job_state), ("cancel", keys.job_cancel)):
        before, after = keys.job_key_around(key)
        assert before + "chatcmpl-abc" + after == helper("chatcmpl-abc")
    with pytest.raises(ValueError):
        keys.job_key_around("chunks")
