"""Embeddings served by Kuwa: the embeddings backend on a tiny random BERT (built here, offline),
``POST /v1/embeddings`` through a real gateway, Redis and executor (the official ``openai``
SDK), its errors and permissions, and document retrieval ranking by meaning with the model
Kuwa serves (``KUWA_EMBEDDING_MODEL``): passages embedded by the indexing worker, prompts by
the gateway, both as embedding jobs through the broker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never download

import torch

from kuwa import keys
from kuwa.executors import load_backend
from kuwa.executors.base import UnservedJobError
from kuwa.executors.embeddings_backend import EmbeddingsBackend, pooling_of
from kuwa.schemas import Job, Message, SchemaError, parse_embedding_request
from kuwa.schemas.embedding import embedding_job, pack_vectors, unpack_vectors
from kuwa.settings import Settings
from tests import tinymodel
from tests.stack import RedisServer, Stack, wait_until
from tests.web import make_user, store_of

torch.set_num_threads(1)  # a tiny model: more threads only add overhead on a busy machine

pytestmark = pytest.mark.anyio
CODE = "tiny-embed"
API = "Room_read_access_to_api"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tinymodel.build_embedder(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
async def backend(tiny_encoder: Path) -> Any:
    b = EmbeddingsBackend(Settings(model=str(tiny_encoder)), str(tiny_encoder))
    await b.start()
    yield b
    await b.stop()


async def vectors_of(backend: EmbeddingsBackend, texts: list[str]) -> np.ndarray:
    got = await backend.embed(texts)
    return np.frombuffer(got.rows, dtype="<f4").reshape(len(texts), -1)


# --- the request and the wire format --------------------------------------------------------
def test_the_request_takes_a_text_or_a_list_and_refuses_what_it_cannot_serve() -> None:
    assert parse_embedding_request({"model": "m", "input": "hi"}).inputs == ("hi",)
    r = parse_embedding_request({"model": "m", "input": ["a", "b"], "encoding_format": "base64"})
    assert r.inputs == ("a", "b") and r.encoding_format == "base64"
    refused = {
        "model": {"input": "hi"},
        "input": {"model": "m", "input": []},
        "input[1]": {"model": "m", "input": ["a", [1, 2]]},
        "encoding_format": {"model": "m", "input": "a", "encoding_format": "int8"},
        "dimensions": {"model": "m", "input": "a", "dimensions": 8},
    }
    for param, body in refused.items():
        with pytest.raises(SchemaError) as info:
            parse_embedding_request(body)
        assert info.value.param == param
    with pytest.raises(SchemaError):
        parse_embedding_request({"model": "m", "input": [""]})
    with pytest.raises(SchemaError):
        parse_embedding_request({"model": "m", "input": ["x"] * 2049})


def test_an_embedding_job_travels_as_a_job_and_its_vectors_as_text() -> None:
    job = embedding_job(CODE, ["a", "b"], user_id=7)
    back = Job.decode(job.encode())
    assert back.kind == "embed" and back.inputs == ("a", "b") and back.messages == ()
    assert back.id.startswith("embd-") and keys.valid_job_id(back.id)
    chat = Job(id="chatcmpl-1", model="m", messages=(Message("user", "x"),))
    assert b'"kind"' not in chat.encode()  # a chat job's bytes are as before
    rows = np.arange(6, dtype="<f4").reshape(2, 3)
    assert unpack_vectors(pack_vectors(rows.tobytes()), 2) == [rows[0].tobytes(), rows[1].tobytes()]
    with pytest.raises(ValueError):
        unpack_vectors(pack_vectors(rows.tobytes()), 4)
    with pytest.raises(ValueError):
        embedding_job(CODE, ["x"] * 65)


# --- the backend, in process ----------------------------------------------------------------
def test_registered_as_an_entry_point() -> None:
    assert load_backend("embeddings") is EmbeddingsBackend


async def test_vectors_are_unit_length_deterministic_and_independent_of_the_batch(
    backend: EmbeddingsBackend,
) -> None:
    texts = ["The quick brown fox jumps.", "你好, 世界", "Hello there! " * 400]  # the last: cut
    together = await vectors_of(backend, texts)
    assert together.shape == (3, tinymodel.EMBEDDING_DIM)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    for i, text in enumerate(texts):
        alone = await vectors_of(backend, [text])
        assert np.allclose(alone[0], together[i], atol=1e-5)
    assert not np.allclose(together[0], together[1])
    assert backend.pooling == "mean" and backend.max_len == 512  # the model's positions
    assert (await backend.embed(["one two"])).tokens > 0


async def test_a_chat_sent_to_it_is_refused() -> None:
    b = EmbeddingsBackend(Settings(), None)
    job = Job(id="chatcmpl-x", model=CODE, messages=(Message("user", "hi"),))
    with pytest.raises(UnservedJobError):
        await b.generate(job, lambda text: None)


def test_a_sentence_transformers_folder_names_its_pooling(tmp_path: Path) -> None:
    assert pooling_of(tmp_path) == "mean"  # nothing says otherwise
    folder = tinymodel.build_embedder(tmp_path / "st", pooling="cls")
    assert pooling_of(folder) == "cls"


# --- through the broker ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway, an RQ worker and an executor serving the tiny encoder as ``tiny-embed``, a
    debug chat model ``hist`` that answers with its prompt; Kuwa's own embedding model ranks
    the documents' passages (``KUWA_EMBEDDING_MODEL``)."""
    folder = tmp_path_factory.mktemp("embeddings")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    env = {"KUWA_EMBEDDING_MODEL": CODE}
    try:
        s.token = s.create_user()
        proc = s.spawn(
            "embed-executor",
            [
                "executor",
                "start",
                "--backend",
                "embeddings",
                "--model",
                str(tiny_encoder),
                "--access-code",
                CODE,
                "--max-concurrency",
                "2",
            ],
            {"OMP_NUM_THREADS": "1"},
        )
        s.wait_executor(proc, (CODE,), timeout=120)
        s.executor("hist", transform="history")
        s.spawn("worker", ["worker", "start"], env)
        s.gateway(env)
        yield s
    finally:
        s.stop()
        server.stop()


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[Any]:
    import openai

    with openai.OpenAI(
        base_url=stack.base_url + "/v1", api_key=stack.token, max_retries=0, timeout=60
    ) as c:
        yield c


def post(stack: Stack, body: Any, token: str | None = None) -> httpx.Response:
    return httpx.post(
        stack.base_url + "/v1/embeddings",
        headers={"authorization": f"Bearer {token or stack.token}"},
        json=body,
        timeout=60,
    )


@pytest.mark.slow
async def test_the_openai_sdk_gets_the_models_vectors(
    client: Any, stack: Stack, backend: EmbeddingsBackend
) -> None:
    texts = ["The red car is parked by the harbour.", "淡水老街的阿給"]
    got = client.embeddings.create(model=CODE, input=texts)  # the SDK asks for base64
    assert got.model == CODE and [d.index for d in got.data] == [0, 1]
    assert got.usage.prompt_tokens == got.usage.total_tokens > 0
    served = np.array([d.embedding for d in got.data], dtype=np.float32)
    assert np.allclose(served, await vectors_of(backend, texts), atol=1e-5)
    one = client.embeddings.create(model=CODE, input=texts[1], encoding_format="float")
    assert np.allclose(one.data[0].embedding, served[1], atol=1e-5)
    # More texts than one job takes: several jobs, the vectors in input order.
    many = [f"sentence number {i}" for i in range(70)]
    r = post(stack, {"model": CODE, "input": many})
    assert r.status_code == 200, r.text
    rows = r.json()["data"]
    assert [d["index"] for d in rows] == list(range(70))
    check = await vectors_of(backend, [many[0], many[69]])
    assert np.allclose([rows[0]["embedding"], rows[69]["embedding"]], check, atol=1e-5)
    # It ran as jobs on the model's queue, like any chat.
    redis = stack.redis.client()
    try:
        assert int(redis.hget(keys.queue_counters(CODE), "jobs") or 0) >= 4
    finally:
        redis.close()


@pytest.mark.slow
def test_clear_errors(stack: Stack) -> None:
    r = httpx.post(stack.base_url + "/v1/embeddings", json={"model": CODE, "input": "x"})
    assert r.status_code == 401
    for body, param in (
        ({"model": CODE, "input": []}, "input"),
        ({"model": CODE, "input": [1, 2]}, "input[0]"),
        ({"model": CODE, "input": "x", "dimensions": 16}, "dimensions"),
        ({"input": "x"}, "model"),
    ):
        r = post(stack, body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    r = post(stack, {"model": "no-such-model", "input": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    # A chat model makes no embeddings; an embedding model does not chat.
    r = post(stack, {"model": "hist", "input": "x"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] | {"message": ""} == {
        "message": "",
        "type": "invalid_request_error",
        "param": "model",
        "code": "wrong_model_type",
    }
    r = httpx.post(
        stack.base_url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {stack.token}"},
        json={"model": CODE, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_model_type"


@pytest.mark.slow
def test_only_people_allowed_the_model_get_its_vectors(stack: Stack) -> None:
    assert post(stack, {"model": CODE, "input": "x"}).status_code == 200  # registered now
    allowed = make_user(stack, "vectors@example.com", permissions=[API, f"model:{CODE}"])
    chat_only = make_user(stack, "chat-only@example.com", permissions=[API, "model:hist"])
    no_api = make_user(stack, "no-api@example.com", permissions=[f"model:{CODE}"])
    with store_of(stack) as store:
        tokens = {u.email: store.accounts.ensure_token(u.id) for u in (allowed, chat_only, no_api)}
    assert post(stack, {"model": CODE, "input": "x"}, tokens[allowed.email]).status_code == 200
    r = post(stack, {"model": CODE, "input": "x"}, tokens[chat_only.email])
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
    r = post(stack, {"model": CODE, "input": "x"}, tokens[no_api.email])
    assert r.status_code == 403 and r.json()["error"]["code"] == "api_not_allowed"


@pytest.mark.slow
async def test_documents_are_ranked_by_meaning_with_the_model_kuwa_serves(
    client: Any, stack: Stack, backend: EmbeddingsBackend
) -> None:
    from kuwa.accounts import close_database, open_database
    from kuwa.documents import Documents
    from kuwa.documents.embeddings import from_bytes

    lines = [
        "The red car is parked by the harbour all day long.",
        "Lunch in the canteen is soup and bread on Mondays.",
        "The library closes early on the first Friday of each month.",
    ]
    upload = client.files.create(
        file=("notes.txt", "\n\n".join(line * 8 for line in lines).encode()), purpose="assistants"
    )
    wait_until(
        lambda: client.files.retrieve(upload.id).status in ("processed", "error"), 60, "indexing"
    )
    assert client.files.retrieve(upload.id).status == "processed"
    # The worker embedded the passages with the tiny model, through its executor.
    db = open_database(stack.settings())
    try:
        docs = Documents(db, stack.settings())
        doc_id = next(
            int(d["id"]) for d in docs.of_owner(_owner_id(stack)) if d["uid"] == upload.id
        )
        (_, raw) = docs.index_bytes([doc_id])[doc_id]
        assert raw is not None
        stored = from_bytes(raw)
        found = docs.passages([(doc_id, i) for i in range(len(stored))])
        texts = [str(found[(doc_id, i)]["text"]) for i in range(len(stored))]
    finally:
        close_database(db)
    assert stored.shape == (3, tinymodel.EMBEDDING_DIM)
    assert np.allclose(stored, await vectors_of(backend, texts), atol=1e-5)

    # A question with no word of any passage: BM25 alone finds nothing; by meaning (the
    # prompt embedded by the gateway, through the broker) the nearest passages are cited.
    question = "zqx vmw"
    nearest = np.argsort(-(stored @ (await vectors_of(backend, [question]))[0]))
    answer = client.chat.completions.create(
        model="hist",
        messages=[{"role": "user", "content": question}],
        extra_body={"files": [upload.id]},
    )
    cited = (answer.model_extra or {})["citations"]
    assert [c["text"] for c in cited] == [texts[i] for i in nearest]
    content = answer.choices[0].message.content or ""
    assert "[1] notes.txt" in content and texts[nearest[0]] in content


def _owner_id(stack: Stack) -> int:
    with store_of(stack) as store:
        user = store.accounts.find_user("tester@example.com")
        assert user is not None
        return user.id


@pytest.mark.slow
def test_the_chat_page_leaves_embedding_models_out_and_the_api_lists_them(stack: Stack) -> None:
    from tests.web import Browser

    listed = httpx.get(
        stack.base_url + "/v1/models", headers={"authorization": f"Bearer {stack.token}"}
    ).json()
    assert {CODE, "hist"} <= {m["id"] for m in listed["data"]}
    with Browser(stack.base_url, headers={"accept": "application/json"}) as b:
        assert b.login("tester@example.com").status_code == 303
        codes = [m["code"] for m in b.get("/app/models").json()["models"]]
    assert "hist" in codes and CODE not in codes
    redis = stack.redis.client()
    try:
        meta = redis.hget(keys.MODELS, CODE)
    finally:
        redis.close()
    assert meta is not None and b'"kinds":["embed"]' in meta
