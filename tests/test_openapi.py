"""The OpenAPI document at ``/openapi.json``: valid OpenAPI 3.1, exactly the routes the app
serves (every method of every route, both ways), examples and request bounds that agree with
the code, forms that list the fields their handlers read, and live responses of a real
gateway (JSON, error and streamed) that match the documented schemas."""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from httpx_sse import connect_sse
from openapi_spec_validator import validate
from starlette.routing import Route

from kuwa import errors
from kuwa.gateway.app import create_app, routes
from kuwa.gateway.endpoint import declared, endpoint
from kuwa.gateway.openapi import build_document
from kuwa.gateway.openapi_errors import ERRORS
from kuwa.gateway.openapi_schemas import STATUS_NAMES
from kuwa.schemas import SchemaError, parse_chat_request, parse_embedding_request
from kuwa.settings import Settings
from tests.stack import Stack
from tests.web import Browser

DOC = build_document(routes())
METHODS = {"get", "post", "put", "patch", "delete", "head", "options", "trace"}
DOCS = Path(__file__).parent.parent / "docs"


def is_api(path: str) -> bool:
    """The public API: /v1, /v1.0, health, metrics and the document itself."""
    return path.startswith(("/v1/", "/v1.0/")) or path in ("/healthz", "/metrics", "/openapi.json")


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator for a schema of the document (its ``#/components/…`` refs resolve)."""
    return jsonschema.Draft202012Validator({**schema, "components": DOC["components"]})


def check(schema: dict[str, Any], value: Any) -> None:
    errs = sorted(validator(schema).iter_errors(value), key=str)
    assert not errs, f"{value!r} does not match: " + "; ".join(e.message for e in errs[:5])


def deref(item: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in item:
        node: Any = DOC
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        item = node
    return item


def operation(method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = DOC["paths"][path][method]
    return op


def response_doc(method: str, path: str, status: int) -> dict[str, Any]:
    responses = operation(method, path)["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
    return deref(responses[str(status)])


def check_json(method: str, path: str, r: httpx.Response) -> Any:
    """The response's status is documented for the operation and its JSON matches."""
    doc = response_doc(method, path, r.status_code)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    check(doc["content"]["application/json"]["schema"], body)
    if r.status_code >= 400:
        error = body["error"]
        assert (r.status_code, error["type"], error["code"]) in {
            (c.status, c.type, c.code) for c in ERRORS
        }, f"undocumented error {r.status_code} {error}"
    return body


def check_stream(method: str, path: str, r: httpx.Response, raw: str) -> list[Any]:
    """Every ``data:`` payload of a stream matches the documented ``x-sse`` schema, and the
    stream ends with the documented terminator; the JSON payloads, in order."""
    doc = response_doc(method, path, r.status_code)
    assert r.headers["content-type"].startswith("text/event-stream")
    sse = doc["content"]["text/event-stream"]["x-sse"]
    assert raw.endswith(sse["terminator"] + "\n\n"), raw[-200:]
    payloads = []
    for line in raw.split("\n"):
        if line.startswith("data: ") and line != "data: [DONE]":
            payload = json.loads(line.removeprefix("data: "))
            check(sse["data"], payload)
            payloads.append(payload)
        elif line.startswith("id: "):
            assert sse["event_ids"], line
    assert payloads
    return payloads


# --- the document itself --------------------------------------------------------------------
def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"].startswith("3.1.")
    validate(DOC)
    json.dumps(DOC)  # plain JSON all the way down
    for schema in DOC["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    for _, node in walk(DOC):
        if isinstance(node.get("x-sse"), dict):
            for schema in [node["x-sse"].get("data"), *node["x-sse"].get("events", {}).values()]:
                if schema is not None:
                    jsonschema.Draft202012Validator.check_schema(schema)


def served_routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings(data_dir=tmp_path / "data"))
    out = set()
    for route in app.routes:
        if isinstance(route, Route):
            path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
            out |= {(m.lower(), path) for m in (route.methods or set()) - {"HEAD"}}
    return out


def test_every_route_is_documented_and_every_documented_route_is_served(
    tmp_path: Path,
) -> None:
    served = served_routes(tmp_path)
    documented = {(m, p) for p, item in DOC["paths"].items() for m in item if m in METHODS}
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"
    for route in [
        ("post", "/v1.0/chat/completions"),
        ("get", "/openapi.json"),
        ("post", "/app/rooms/{room_id}/messages"),
        ("get", "/rooms/{room_id}"),
        ("get", "/app/bots/{bot_id}"),
        ("post", "/app/bots/{bot_id}/delete"),
        ("get", "/manage/users/{user_id}"),
        ("post", "/manage/users/{user_id}"),
        ("get", "/manage/groups/{group_id}"),
        ("post", "/login"),
    ]:
        assert route in documented, route


def test_a_route_that_declares_nothing_fails_the_build() -> None:
    async def undeclared(request: Any) -> Any:
        raise AssertionError

    with pytest.raises(ValueError, match="declares nothing"):
        build_document([*routes(), Route("/app/new", undeclared, methods=["POST"])])
    ok = endpoint("A new thing", media="text/plain")(undeclared)
    assert "/app/new" in build_document([*routes(), Route("/app/new", ok)])["paths"]


def test_every_body_is_declared() -> None:
    """A POST route either declares its body (JSON, form or upload) or takes none; JSON and
    form bodies are components written from their structs."""
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                schema = content["schema"]
                if "$ref" in schema:  # a struct's component
                    assert schema["$ref"].startswith("#/components/schemas/"), path
                    deref(schema)
                else:  # a file as the raw body
                    assert schema["contentMediaType"] == media, (method, path, media)
    bodies = {
        (m, p) for p, item in DOC["paths"].items() for m, op in item.items() if "requestBody" in op
    }
    assert ("post", "/app/rooms") in bodies
    assert ("post", "/manage/users/{user_id}") in bodies
    assert ("post", "/v1/files") in bodies


FORM_READERS = {"get", "getlist", "text", "checked", "typed"}


def form_fields_read(source: str) -> set[str]:
    """The form fields a piece of source reads by name: ``form.get("x")``,
    ``form.getlist("x")``, ``text(form, "x")``, ``checked(form, "x")``, ``typed(form, "x")``,
    ``_number(form, "x", …)``; an f-string name as a glob (``key_*``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(textwrap.dedent(source))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = func.value if isinstance(func, ast.Attribute) else None
        args = node.args
        if name in ("get", "getlist") and isinstance(owner, ast.Name) and owner.id == "form":
            target = args[0] if args else None
        elif name in ("text", "checked", "typed", "_number") and len(args) >= 2:
            target = args[1] if isinstance(args[0], ast.Name) and args[0].id == "form" else None
        else:
            continue
        if isinstance(target, ast.Constant) and isinstance(target.value, str):
            names.add(target.value)
        elif isinstance(target, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "*" for v in target.values]
            names.add("".join(str(p) for p in parts))
    return names


def test_every_form_field_a_handler_reads_is_declared() -> None:
    """A form handler reads only fields its declared struct has; every field its module's
    helpers read is a field of one of the module's forms."""
    import fnmatch
    import sys

    import msgspec

    checked = 0
    by_module: dict[str, set[str]] = {}
    for route in routes():
        decl = declared(getattr(route, "endpoint", None))
        if decl is None or decl.form is None:
            continue
        fields = {f.encode_name for f in msgspec.structs.fields(decl.form)}
        handler = inspect.unwrap(route.endpoint)
        by_module.setdefault(handler.__module__, set()).update(fields)
        read = form_fields_read(inspect.getsource(handler))
        for name in read:
            assert fnmatch.filter(fields, name), f"{route.path}: reads {name!r}, not declared"
        checked += bool(read)
    assert checked >= 15
    for module, fields in by_module.items():
        for name in form_fields_read(inspect.getsource(sys.modules[module])):
            assert fnmatch.filter(fields, name), f"{module} reads {name!r}, in no form of its"


def test_every_operation_says_how_it_is_authenticated() -> None:
    schemes = DOC["components"]["securitySchemes"]
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            security = op.get("security", DOC["security"])
            for requirement in security:
                assert set(requirement) <= set(schemes), (method, path)
            if path.startswith(("/v1/", "/v1.0/")):
                assert security == [{"bearerAuth": []}], (method, path)
            if path.startswith("/app/") and method == "post":
                assert security == [{"session": [], "csrf": [], "csrfCookie": []}], path
            assert op["operationId"] and op["summary"], (method, path)


def walk(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{where}/{i}")


def test_every_example_matches_its_schema() -> None:
    seen = 0
    for where, node in walk(DOC):
        schema = node.get("schema")
        if isinstance(schema, dict) and ("example" in node or "examples" in node):
            examples = [node["example"]] if "example" in node else []
            if isinstance(node.get("examples"), dict):
                examples += [deref(e)["value"] for e in node["examples"].values()]
            for example in examples:
                check(schema, example)
                seen += 1
        sse = node.get("x-sse")
        if isinstance(sse, dict) and "data" in sse:
            for example in sse["examples"]:
                check(sse["data"], example)
                seen += 1
            assert sse["text"].endswith(sse["terminator"] + "\n\n"), where
    assert seen > 30


def test_error_responses_list_every_error_the_api_gives() -> None:
    responses = DOC["components"]["responses"]
    for case in ERRORS:
        assert f"`{case.code}`" in responses[STATUS_NAMES[case.status]]["description"]
    # Each error class's own code is listed, unless nothing in the API raises it with it.
    # (The API always names a more precise code for the first three; the rest are raised by
    # the web pages, kuwa-cli and mail only.)
    unused = {"permission_denied", "rate_limited", "job_failed"}
    unused |= {"conflict", "config_error", "mail_failed"}
    codes = {c.code for c in ERRORS}
    classes = [c for c in vars(errors).values() if isinstance(c, type)]
    for cls in classes:
        if issubclass(cls, errors.KuwaError):
            assert cls.code in codes | unused, cls
    assert len(classes) > 15
    for response in responses.values():
        for example in response["content"]["application/json"]["examples"].values():
            check({"$ref": "#/components/schemas/ErrorResponse"}, example["value"])


def test_the_error_table_in_the_docs_is_the_documents() -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d{3}) \| `(\w+)` \| `(\w+)` \|", text, re.MULTILINE)
    assert {(int(s), t, c) for s, t, c in rows} == {(c.status, c.type, c.code) for c in ERRORS}


def test_streamed_chunks_decode_into_the_declared_struct() -> None:
    """The hot path writes chunk events from precomputed bytes; each is exactly a
    ChatCompletionChunk (no field missing, none extra)."""
    import msgspec

    from kuwa.gateway.openai_api import ChunkFormat
    from kuwa.schemas import Chunk, Usage
    from kuwa.schemas.api import ChatCompletionChunk

    cited = [{"n": 1, "file": "file-0a", "name": "a.pdf", "page": 2, "text": "x"}]
    for usage in (True, False):
        fmt = ChunkFormat("chatcmpl-0a1b", 1795671826, 'a "model"', include_usage=usage)
        raw = (
            fmt.role(cited)
            + fmt.chunk(Chunk(0, "hi"))
            + fmt.chunk(Chunk(1, "", "stop", Usage(1, 2)))
        )
        events = [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]
        assert len(events) == 4 if usage else 3
        for event in events:
            chunk = msgspec.json.decode(event, type=ChatCompletionChunk)
            assert chunk.model == 'a "model"'


# --- the request schema agrees with the validator ------------------------------------------
def parses(body: Any, dialect: str) -> str | None:
    """None if the gateway accepts the body, else the ``param`` it names (or "")."""
    try:
        parse_chat_request(body, dialect)  # type: ignore[arg-type]
    except SchemaError as exc:
        return exc.param or ""
    return None


def request_schema(dialect: str) -> dict[str, Any]:
    name = "ChatCompletionRequest" if dialect == "openai" else "KuwaChatRequest"
    return {"$ref": f"#/components/schemas/{name}"}


HELLO = [{"role": "user", "content": "hi"}]


def bounded_fields(dialect: str) -> dict[str, dict[str, Any]]:
    """The request's fields with a minimum, each its (non-null) schema."""
    out = {}
    for field, schema in deref(request_schema(dialect))["properties"].items():
        for option in schema.get("anyOf", [schema]):
            if "minimum" in option:
                out[field] = option
    return out


@pytest.mark.parametrize("dialect", ["openai", "kuwa"])
def test_the_documented_bounds_are_the_validators(dialect: str) -> None:
    v = validator(request_schema(dialect))
    bounded = 0
    for field, schema in bounded_fields(dialect).items():
        low, high = schema["minimum"], schema.get("maximum")
        step = 1 if "integer" in schema["type"] else 0.001
        inside = [low] + ([high] if high is not None else [])
        outside = [low - step] + ([high + step] if high is not None else [])
        for value in inside:
            body = {"model": "echo", "messages": HELLO, field: value}
            assert v.is_valid(body) and parses(body, dialect) is None, (field, value)
        for value in outside:
            body = {"model": "echo", "messages": HELLO, field: value}
            assert not v.is_valid(body), (field, value)
            assert parses(body, dialect) == field, (field, value)
        bounded += 1
    assert bounded >= 7


ACCEPTED = [
    {"model": "echo", "messages": HELLO},
    {"model": "echo", "messages": [{"role": "developer", "content": "be brief"}, *HELLO]},
    {"model": "echo", "messages": HELLO, "top_k": -1, "stop": "", "n": 1, "seed": 7},
    {"model": "echo", "messages": HELLO, "stop": ["a", "b", "c", "d"], "ignore_eos": True},
    {"model": "echo", "messages": HELLO, "stream": None, "temperature": None, "user": "u1"},
    {"model": "echo", "messages": HELLO, "tools": [], "response_format": {"type": "text"}},
]
REJECTED = [
    [],
    {"messages": HELLO},
    {"model": "", "messages": HELLO},
    {"model": 5, "messages": HELLO},
    {"model": "echo"},
    {"model": "echo", "messages": []},
    {"model": "echo", "messages": "hi"},
    {"model": "echo", "messages": ["hi"]},
    {"model": "echo", "messages": [{"role": "robot", "content": "hi"}]},
    {"model": "echo", "messages": [{"content": "hi"}]},
    {"model": "echo", "messages": [{"role": "user"}]},
    {"model": "echo", "messages": [{"role": "user", "content": 5}]},
    {"model": "echo", "messages": HELLO, "stream": "yes"},
    {"model": "echo", "messages": HELLO, "stop": ["a", "b", "c", "d", "e"]},
    {"model": "echo", "messages": HELLO, "stop": [""]},
    {"model": "echo", "messages": HELLO, "stop": 5},
    {"model": "echo", "messages": HELLO, "n": 2},
    {"model": "echo", "messages": HELLO, "ignore_eos": "yes"},
    {"model": "echo", "messages": HELLO, "top_k": 0},
    {"model": "echo", "messages": HELLO, "seed": "7"},
    {"model": "echo", "messages": HELLO, "temperature": "hot"},
    {"model": "echo", "messages": HELLO, "max_tokens": True},
]
PARTS = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


@pytest.mark.parametrize("dialect", ["openai", "kuwa"])
def test_the_request_schema_accepts_and_refuses_what_the_gateway_does(dialect: str) -> None:
    v = validator(request_schema(dialect))
    for body in ACCEPTED:
        assert v.is_valid(body), body
        assert parses(body, dialect) is None, body
    for body in REJECTED:
        assert not v.is_valid(body), body
        assert parses(body, dialect) is not None, body
    parts = {"model": "echo", "messages": PARTS}
    image = {"model": "echo", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}
    assert v.is_valid(parts) is (dialect == "openai")
    assert (parses(parts, dialect) is None) is (dialect == "openai")
    assert not v.is_valid(image)
    assert parses(image, dialect) is not None
    default = deref(request_schema(dialect))["properties"]["stream"]["default"]
    assert parse_chat_request({"model": "m", "messages": HELLO}, dialect).stream is default  # type: ignore[arg-type]


# --- live responses match the document ------------------------------------------------------
@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.base_url, headers={"authorization": f"Bearer {stack.token}"}, timeout=20
    ) as client:
        yield client


def test_the_gateway_serves_the_document_to_anyone(stack: Stack) -> None:
    r = httpx.get(stack.base_url + "/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert "set-cookie" not in r.headers, r.headers
    assert r.json() == json.loads(json.dumps(DOC))


def test_models_and_health_match(api: httpx.Client) -> None:
    models = check_json("get", "/v1/models", api.get("/v1/models"))
    assert {"echo", "reverse"} <= {m["id"] for m in models["data"]}
    check_json("get", "/healthz", api.get("/healthz"))
    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert list(response_doc("get", "/metrics", 200)["content"]) == ["text/plain"]


def test_chat_answers_match(api: httpx.Client) -> None:
    body = {"model": "reverse", "messages": [{"role": "user", "content": "Hello!"}]}
    answer = check_json("post", "/v1/chat/completions", api.post("/v1/chat/completions", json=body))
    assert answer["choices"][0]["message"]["content"] == "!olleH"
    kuwa = {**body, "stream": False}
    answer = check_json(
        "post", "/v1.0/chat/completions", api.post("/v1.0/chat/completions", json=kuwa)
    )
    assert answer["choices"][0]["message"]["content"] == "!olleH"


def stream(api: httpx.Client, path: str, body: dict[str, Any]) -> tuple[httpx.Response, str]:
    with api.stream("POST", path, json=body) as r:
        return r, r.read().decode()


def test_streams_match_and_a_job_can_be_followed(api: httpx.Client) -> None:
    body = {
        "model": "echo",
        "messages": [{"role": "user", "content": "Hello 你好!"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    r, raw = stream(api, "/v1/chat/completions", body)
    chunks = check_stream("post", "/v1/chat/completions", r, raw)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == (
        "Hello 你好!"
    )
    r, raw = stream(api, "/v1.0/chat/completions", {**body, "stream_options": None})
    events = check_stream("post", "/v1.0/chat/completions", r, raw)
    assert "".join(e["choices"][0]["delta"]["content"] for e in events) == "Hello 你好!"
    assert "\\u4f60" in raw  # ASCII-escaped, as the seed's server wrote it
    with api.stream("GET", f"/v1/jobs/{chunks[0]['id']}/events") as r:  # replayed
        raw = r.read().decode()
    followed = check_stream("get", "/v1/jobs/{job_id}/events", r, raw)
    assert "id: 0\n" in raw
    assert followed == chunks


def test_errors_match(api: httpx.Client, stack: Stack) -> None:
    chat = "/v1/chat/completions"
    hello = [{"role": "user", "content": "hi"}]
    r = httpx.post(stack.base_url + chat, json={"model": "echo", "messages": hello})
    assert check_json("post", chat, r)["error"]["code"] == "invalid_api_key"
    r = api.post(chat, json={"model": "echo", "messages": hello, "temperature": 9})
    assert check_json("post", chat, r)["error"]["param"] == "temperature"
    r = api.post(chat, content=b"{not json")
    assert check_json("post", chat, r)["error"]["code"] == "invalid_request"
    r = api.post("/v1.0/chat/completions", json={"model": "nope", "messages": hello})
    assert check_json("post", "/v1.0/chat/completions", r)["error"]["code"] == "model_not_found"
    r = api.get("/v1/jobs/chatcmpl-0123456789abcdef/events")
    assert check_json("get", "/v1/jobs/{job_id}/events", r)["error"]["code"] == "not_found"
    r = api.get("/v1/jobs/chatcmpl-0123456789abcdef/events", params={"after": "x"})
    assert check_json("get", "/v1/jobs/{job_id}/events", r)["error"]["param"] == "after"
    r = api.post(
        chat, json={"model": "echo", "messages": [{"role": "user", "content": "/debug error x"}]}
    )
    assert check_json("post", chat, r)["error"]["code"] == "model_error"
    for r, response in (
        (api.get(chat), "MethodNotAllowed"),
        (api.get("/v2/chat"), "NotFound"),
    ):
        schema = DOC["components"]["responses"][response]["content"]["application/json"]
        check(schema["schema"], r.json())
    failing = {
        "model": "echo",
        "stream": True,
        "messages": [{"role": "user", "content": "/debug error x"}],
    }
    r, raw = stream(api, chat, failing)
    assert check_stream("post", chat, r, raw)[-1]["error"]["code"] == "model_error"
    r, raw = stream(api, "/v1.0/chat/completions", failing)
    assert check_stream("post", "/v1.0/chat/completions", r, raw)[-1]["error"]["code"] == (
        "model_error"
    )


EMBED_ACCEPTED = [
    {"model": "embed", "input": "hi"},
    {"model": "embed", "input": ["a", "b"], "encoding_format": "base64", "user": "u"},
    {"model": "embed", "input": "hi", "encoding_format": None, "dimensions": None},
]
EMBED_REJECTED = [
    [],
    {"input": "hi"},
    {"model": "", "input": "hi"},
    {"model": "embed"},
    {"model": "embed", "input": ""},
    {"model": "embed", "input": []},
    {"model": "embed", "input": [""]},
    {"model": "embed", "input": [[1, 2]]},
    {"model": "embed", "input": ["x"] * 2049},
    {"model": "embed", "input": "hi", "encoding_format": "int8"},
    {"model": "embed", "input": "hi", "dimensions": 8},
]


def test_the_embedding_request_schema_is_the_validators() -> None:
    v = validator({"$ref": "#/components/schemas/EmbeddingRequest"})
    for body in EMBED_ACCEPTED:
        assert v.is_valid(body), body
        parse_embedding_request(body)
    for body in EMBED_REJECTED:
        assert not v.is_valid(body), body
        with pytest.raises(SchemaError):
            parse_embedding_request(body)


def test_embeddings_match(api: httpx.Client, stack: Stack) -> None:
    stack.executor("embed", transform="embed")  # a debug embedding model
    path = "/v1/embeddings"
    body = check_json("post", path, api.post(path, json={"model": "embed", "input": ["a b", "c"]}))
    assert [len(d["embedding"]) for d in body["data"]] == [64, 64]
    packed = {"model": "embed", "input": "a b", "encoding_format": "base64"}
    body = check_json("post", path, api.post(path, json=packed))
    assert isinstance(body["data"][0]["embedding"], str)
    r = api.post(path, json={"model": "echo", "input": "x"})  # a chat model
    assert check_json("post", path, r)["error"]["code"] == "wrong_model_type"
    r = api.post(path, json={"model": "embed", "input": []})
    assert check_json("post", path, r)["error"]["param"] == "input"
    r = api.post("/v1/chat/completions", json={"model": "embed", "messages": HELLO})
    assert check_json("post", "/v1/chat/completions", r)["error"]["code"] == "wrong_model_type"


def test_the_web_app_api_matches(stack: Stack) -> None:
    with Browser(stack.base_url, headers={"accept": "application/json"}) as b:
        assert b.login("tester@example.com").status_code == 303
        csrf = {"x-csrftoken": b.csrf()}
        check_json("get", "/app/models", b.get("/app/models"))
        r = b.http.post("/app/rooms", json={"models": ["echo", "reverse"]}, headers=csrf)
        room = check_json("post", "/app/rooms", r)
        path = f"/app/rooms/{room['id']}"
        r = b.http.post(path + "/messages", json={"content": "hi"}, headers=csrf)
        sent = check_json("post", "/app/rooms/{room_id}/messages", r)
        assert len(sent["answers"]) == 2
        check_json("get", "/app/rooms", b.get("/app/rooms"))
        check_json("get", "/app/rooms/{room_id}", b.get(path))
        check_json("post", "/app/rooms/{room_id}/stop", b.http.post(path + "/stop", headers=csrf))
        doc = response_doc("get", "/app/rooms/{room_id}/events", 200)
        events = doc["content"]["text/event-stream"]["x-sse"]["events"]
        with connect_sse(b.http, "GET", path + "/events") as source:
            hello = next(source.iter_sse())
            assert hello.event == "hello"
            check(events["hello"], hello.json())
        r = b.get("/app/rooms/999999")
        assert r.status_code == 404
        check_json("get", "/app/rooms/{room_id}", r)
        answer = sent["answers"][0]["id"]
        r = b.http.post(f"/app/messages/{answer}/feedback", json={"rating": 1}, headers=csrf)
        assert check_json("post", "/app/messages/{message_id}/feedback", r)["id"] == answer
        r = b.http.post(path + "/link", json={"enabled": True}, headers=csrf)
        check_json("post", "/app/rooms/{room_id}/link", r)
        for get in ("/app/bots", "/app/trash", "/app/arena/leaderboard"):
            check_json("get", get, b.get(get))
        check_json("get", "/app/rooms/{room_id}/files", b.get(path + "/files"))
        # Bodies are decoded into their declared structs: a misfit names the field.
        for where, body, param in (
            ("/app/rooms", {"models": "echo"}, "models"),
            ("/app/rooms", {"models": ["echo"], "chained": "yes"}, "chained"),
            ("/app/rooms/{room_id}/messages", {"content": 5}, "content"),
            ("/app/rooms/{room_id}/messages", {}, "content"),
            ("/app/rooms/{room_id}/link", {"enabled": "on"}, "enabled"),
            ("/app/rooms/{room_id}/share", {"email": "x@y", "role": "boss"}, "role"),
            ("/app/messages/{message_id}/feedback", {"rating": 5}, "rating"),
        ):
            url = where.replace("{room_id}", str(room["id"])).replace("{message_id}", str(answer))
            r = b.http.post(url, json=body, headers=csrf)
            assert check_json("post", where, r)["error"]["param"] == param, (where, r.text)
        r = b.http.post(path, content=b"[1]", headers=csrf)
        assert check_json("post", "/app/rooms/{room_id}", r)["error"]["code"] == "invalid_request"
