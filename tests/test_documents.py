"""Chat with documents, end to end: upload to a room, indexing by the RQ worker, the passages
that reach every model's prompt (the debug backend's ``history`` transform shows the prompt),
citations, limits and quotas, bad files, and who may see what (real gateway, executors,
worker, Redis and database)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kuwa.settings import Settings
from tests import docfiles
from tests.stack import RedisServer, Stack, wait_until
from tests.web import Browser, make_user, store_of

LIMITS = {
    "KUWA_FILES_MAX_BYTES": str(1024 * 1024),
    "KUWA_FILES_MAX_PAGES": "20",
    "KUWA_FILES_USER_QUOTA_BYTES": str(3 * 1024 * 1024),
    "KUWA_FILES_EXTRACT_TIMEOUT": "60",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("documents")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    try:
        s.executor("hist", transform="history")
        s.executor("hist2", transform="history")
        s.spawn("worker", ["worker", "start"], LIMITS)  # indexes uploads (RQ)
        s.base_url = s.gateway(LIMITS)
        yield s
    finally:
        s.stop()
        server.stop()


class App:
    """A signed-in browser speaking the UI's JSON API."""

    def __init__(self, stack: Stack, email: str) -> None:
        with store_of(stack) as store:
            if store.accounts.find_user(email) is None:
                make_user(stack, email)
        self.email = email
        self.b = Browser(stack.base_url, headers={"accept": "application/json"})
        assert self.b.login(email).status_code == 303
        self.csrf = self.b.csrf()

    def get(self, path: str) -> httpx.Response:
        return self.b.http.get(path)

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.b.http.post(path, json=body or {}, headers={"x-csrftoken": self.csrf})

    def upload(self, room_id: int, name: str, data: bytes) -> httpx.Response:
        return self.b.http.post(
            f"/app/rooms/{room_id}/files",
            params={"name": name},
            content=data,
            headers={"x-csrftoken": self.csrf, "content-type": "application/octet-stream"},
        )

    def indexed(self, room_id: int, name: str, data: bytes) -> dict[str, Any]:
        """Upload, then wait until the worker has indexed (or failed) the file."""
        r = self.upload(room_id, name, data)
        assert r.status_code == 201, r.text
        file_id = r.json()["id"]
        wait_until(
            lambda: self.get(f"/app/files/{file_id}").json()["status"] in ("ready", "failed"),
            60,
            f"{name} to be indexed",
        )
        info: dict[str, Any] = self.get(f"/app/files/{file_id}").json()
        return info

    def room(self, models: list[str]) -> dict[str, Any]:
        r = self.post("/app/rooms", {"models": models})
        assert r.status_code == 201, r.text
        room: dict[str, Any] = r.json()
        return room

    def ask(self, room_id: int, content: str) -> list[dict[str, Any]]:
        r = self.post(f"/app/rooms/{room_id}/messages", {"content": content})
        assert r.status_code == 201, r.text
        ids = [a["id"] for a in r.json()["answers"]]

        def answers() -> list[dict[str, Any]]:
            messages = self.get(f"/app/rooms/{room_id}").json()["messages"]
            return [m for m in messages if m["id"] in ids]

        wait_until(lambda: all(a["status"] != "running" for a in answers()), 20, "answers")
        return answers()

    def close(self) -> None:
        self.b.close()


@pytest.fixture(scope="module")
def owner(stack: Stack) -> Iterator[App]:
    app = App(stack, "owner@example.com")
    yield app
    app.close()


@pytest.fixture(scope="module")
def outsider(stack: Stack) -> Iterator[App]:
    app = App(stack, "outsider@example.com")
    yield app
    app.close()


def test_every_model_answers_from_the_pdf_page_that_holds_the_fact(owner: App) -> None:
    room = owner.room(["hist", "hist2"])
    info = owner.indexed(room["id"], "report.pdf", docfiles.pdf_with_fact(pages=5, fact_page=3))
    assert info["status"] == "ready", info
    assert (info["kind"], info["pages"], info["done"]) == ("pdf", 5, 5)
    answers = owner.ask(room["id"], "What is the launch code of the Zephyr project?")
    assert [a["model"] for a in answers] == ["hist", "hist2"]
    for answer in answers:
        assert answer["status"] == "done", answer
        # The model's prompt: the default template, the passage numbered [1] from page 3.
        assert "[1] report.pdf, page 3\n" + docfiles.FACT in answer["content"]
        assert "Cite each passage you use" in answer["content"]
        assert "Question: What is the launch code of the Zephyr project?" in answer["content"]
        first = answer["citations"][0]
        assert first["n"] == 1 and first["file"] == info["id"] and first["page"] == 3
        assert first["name"] == "report.pdf" and first["text"] == docfiles.FACT
    assert answers[0]["citations"] == answers[1]["citations"]  # the same passages for all
    # Regenerating keeps the answer's passages.
    r = owner.post(f"/app/messages/{answers[0]['id']}/regenerate")
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["citations"] == answers[0]["citations"]


def test_a_zh_tw_reader_gets_the_default_template_in_zh_tw(owner: App, stack: Stack) -> None:
    zh_intro = "請根據下列編號的段落回答問題，這些段落來自本對話的文件。"  # noqa: RUF001
    room = owner.room(["hist"])
    owner.indexed(room["id"], "report.pdf", docfiles.pdf_with_fact(pages=5, fact_page=3))
    # The web UI: the reader's language (here from Accept-Language: no kuwa_lang cookie).
    r = owner.b.http.post(
        f"/app/rooms/{room['id']}/messages",
        json={"content": "What is the launch code of the Zephyr project?"},
        headers={"x-csrftoken": owner.csrf, "accept-language": "zh-TW,zh;q=0.9,en;q=0.5"},
    )
    assert r.status_code == 201, r.text
    answer_id = r.json()["answers"][0]["id"]

    def answer() -> dict[str, Any]:
        messages = owner.get(f"/app/rooms/{room['id']}").json()["messages"]
        found: dict[str, Any] = next(m for m in messages if m["id"] == answer_id)
        return found

    wait_until(lambda: answer()["status"] != "running", 20, "the answer")
    content = answer()["content"]
    assert content.startswith("user: " + zh_intro), content
    assert "[1] report.pdf，第 3 頁\n" + docfiles.FACT in content  # noqa: RUF001
    assert content.endswith("問題：What is the launch code of the Zephyr project?")  # noqa: RUF001
    # The API: the language Accept-Language names first; without it, the question's.
    token = stack.create_user("zh-reader@example.com")
    auth = {"authorization": f"Bearer {token}"}
    up = httpx.post(
        stack.base_url + "/v1/files", headers=auth, files={"file": ("a.txt", docfiles.FACT)}
    )
    file_id = up.json()["id"]
    wait_until(
        lambda: (
            httpx.get(f"{stack.base_url}/v1/files/{file_id}", headers=auth).json()["status"]
            != "uploaded"
        ),
        60,
        "indexing",
    )

    def ask(question: str, language: str | None) -> str:
        headers = auth | ({"accept-language": language} if language else {})
        r = httpx.post(
            stack.base_url + "/v1/chat/completions",
            headers=headers,
            json={
                "model": "hist",
                "messages": [{"role": "user", "content": question}],
                "files": [file_id],
            },
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["choices"][0]["message"]["content"])

    assert ask("Zephyr launch code?", "zh-TW").startswith("user: " + zh_intro)
    assert ask("Zephyr launch code?", None).startswith("user: Answer the question")
    assert ask("Zephyr 的發射代碼是什麼", None).startswith("user: " + zh_intro)


def test_a_chinese_docx_and_a_csv_are_found_by_what_they_say(owner: App) -> None:
    room = owner.room(["hist"])
    zh = owner.indexed(room["id"], "小吃.docx", docfiles.chinese_docx())
    rows = owner.indexed(room["id"], "towns.csv", docfiles.rows_csv())
    assert zh["status"] == "ready" and rows["status"] == "ready", (zh, rows)
    (answer,) = owner.ask(room["id"], "淡水的阿給是用什麼做的？")  # noqa: RUF001
    assert answer["citations"][0]["file"] == zh["id"]
    assert answer["citations"][0]["page"] is None  # a DOCX has no fixed pages
    assert docfiles.ZH_FACT in answer["citations"][0]["text"]
    assert "[1] 小吃.docx\n" in answer["content"]
    (answer,) = owner.ask(room["id"], "Who is the mayor of Quillbury?")
    assert answer["citations"][0]["file"] == rows["id"]
    assert "city: Quillbury; population: 48213; mayor: Ada Greenleaf" in answer["content"]


def test_without_documents_the_prompt_is_unchanged(owner: App) -> None:
    room = owner.room(["hist"])
    (answer,) = owner.ask(room["id"], "just a question")
    assert answer["content"] == "user: just a question" and answer["citations"] == []


def test_bad_files_get_a_clear_error_and_never_stall_the_worker(owner: App) -> None:
    room = owner.room(["hist"])
    rid = room["id"]
    scanned = owner.indexed(rid, "scan.pdf", docfiles.image_only_pdf())
    assert scanned["status"] == "failed"
    assert scanned["error"].startswith("No text found in this file")

    locked = owner.upload(rid, "locked.pdf", docfiles.locked_pdf())
    assert locked.status_code == 400 and "password" in locked.json()["error"]["message"]
    broken = owner.upload(rid, "broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage")
    assert broken.status_code == 400, broken.text
    assert broken.json()["error"]["code"] == "unreadable_document"
    not_docx = owner.upload(rid, "letter.docx", b"just text, no zip")
    assert not_docx.status_code == 400 and "not a DOCX" in not_docx.json()["error"]["message"]
    unknown = owner.upload(rid, "program.exe", b"MZ\x90\x00")
    assert unknown.status_code == 400 and "cannot read .exe" in unknown.json()["error"]["message"]
    bomb = owner.upload(rid, "bomb.docx", docfiles.docx_bomb())
    assert bomb.status_code == 413 and "zip bomb" in bomb.json()["error"]["message"]

    # Inert: a PDF's JavaScript and an HTML page's scripts are never run nor kept as text.
    js = owner.indexed(rid, "otters.pdf", docfiles.javascript_pdf())
    page = owner.indexed(rid, "otters.html", docfiles.HTML_WITH_SCRIPT)
    assert js["status"] == "ready" and page["status"] == "ready", (js, page)
    (answer,) = owner.ask(rid, "otters sleep hold hands")
    texts = " ".join(c["text"] for c in answer["citations"])
    assert "Sea otters hold hands while they sleep." in texts
    assert "Quiet text about otters." in texts
    assert "alert" not in answer["content"] and "fetch(" not in answer["content"]
    assert "display: none" not in answer["content"]
    # The download is always an attachment, never a page of Kuwa's origin.
    raw = owner.get(f"/app/files/{page['id']}/content")
    assert raw.status_code == 200 and raw.content == docfiles.HTML_WITH_SCRIPT
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["content-disposition"].startswith("attachment;")
    assert raw.headers["content-security-policy"] == "sandbox"


def test_size_page_and_quota_limits_answer_413(stack: Stack) -> None:
    app = App(stack, "quota@example.com")
    try:
        room = app.room(["hist"])
        big = app.upload(room["id"], "big.txt", b"x" * (1024 * 1024 + 1))
        assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
        pages = app.upload(room["id"], "long.pdf", docfiles.pdf([f"page {n}" for n in range(25)]))
        assert pages.status_code == 413 and "25 pages" in pages.json()["error"]["message"]
        chunk = b"quota words " * 80_000  # 960,000 bytes
        for _ in range(3):
            assert app.upload(room["id"], "part.txt", chunk).status_code == 201
        over = app.upload(room["id"], "part.txt", chunk)
        assert over.status_code == 413 and over.json()["error"]["code"] == "quota_exceeded"
        # Deleting gives the room back.
        first = app.get(f"/app/rooms/{room['id']}/files").json()["files"][0]
        assert app.post(f"/app/files/{first['id']}/delete").status_code == 200
        assert app.upload(room["id"], "part.txt", chunk).status_code == 201
        # So does deleting the room: its files go with it.
        kept = app.get(f"/app/rooms/{room['id']}/files").json()["files"]
        assert len(kept) == 3
        assert app.post(f"/app/rooms/{room['id']}/delete").status_code == 200
        assert all(app.get(f"/app/files/{f['id']}").status_code == 404 for f in kept)
        other = app.room(["hist"])
        assert app.upload(other["id"], "part.txt", chunk).status_code == 201
    finally:
        app.close()


def test_only_people_who_can_read_the_room_reach_its_files(
    stack: Stack, owner: App, outsider: App
) -> None:
    room = owner.room(["hist"])
    rid = room["id"]
    info = owner.indexed(rid, "secret.pdf", docfiles.pdf_with_fact(3, 2))
    fid = info["id"]
    for path in (f"/app/files/{fid}", f"/app/files/{fid}/content", f"/app/rooms/{rid}/files"):
        assert outsider.get(path).status_code == 404, path
    assert outsider.post(f"/app/files/{fid}/delete").status_code == 404
    assert outsider.upload(rid, "mine.txt", b"hello").status_code == 404
    assert outsider.get(f"/app/rooms/{rid}").status_code == 404  # and the citations in it

    # A viewer reads the files but adds and removes none.
    viewer = App(stack, "viewer@example.com")
    try:
        shared = owner.post(f"/app/rooms/{rid}/share", {"email": viewer.email, "role": "viewer"})
        assert shared.status_code == 200, shared.text
        assert viewer.get(f"/app/files/{fid}").json()["name"] == "secret.pdf"
        assert viewer.get(f"/app/files/{fid}/content").status_code == 200
        assert [f["id"] for f in viewer.get(f"/app/rooms/{rid}/files").json()["files"]] == [fid]
        assert viewer.upload(rid, "mine.txt", b"hello").status_code == 403
        assert viewer.post(f"/app/files/{fid}/delete").status_code == 404
    finally:
        viewer.close()
    # Deleted: gone from the room and from what the models are given.
    assert owner.post(f"/app/files/{fid}/delete").status_code == 200
    assert owner.get(f"/app/files/{fid}").status_code == 404
    (answer,) = owner.ask(rid, "What is the launch code of the Zephyr project?")
    assert answer["citations"] == [] and "7429" not in answer["content"]


def test_a_shared_folder_keeps_the_files_when_set(tmp_path: Path) -> None:
    """KUWA_FILES_DIR: the bytes go to the folder, not the database."""
    from kuwa.accounts import close_database, open_database
    from kuwa.documents import Documents
    from kuwa.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", files_dir=tmp_path / "shared")
    db = open_database(settings)
    try:
        with store_of_settings(settings) as store:
            user = store.accounts.create_user("folder@example.com", "F", "correct horse battery")
        docs = Documents(db, settings)
        row = docs.add(user.id, "notes.txt", b"folder words")
        stored = list((tmp_path / "shared").rglob("file-*"))
        assert [p.name for p in stored] == [row["uid"]]
        assert docs.content(row) == b"folder words"
        docs.delete(row)
        assert not list((tmp_path / "shared").rglob("file-*"))
    finally:
        close_database(db)


def store_of_settings(settings: Any) -> Any:
    from contextlib import contextmanager

    from kuwa.accounts import Store, close_database, open_database

    @contextmanager
    def opened() -> Iterator[Store]:
        db = open_database(settings)
        try:
            yield Store.over(db, settings.load_secret_key())
        finally:
            close_database(db)

    return opened()


def test_indexing_shows_progress_for_a_long_pdf(owner: App) -> None:
    room = owner.room(["hist"])
    r = owner.upload(room["id"], "long.pdf", docfiles.pdf([docfiles.filler(n) for n in range(20)]))
    assert r.status_code == 201 and r.json()["status"] == "queued"
    assert r.json()["pages"] == 20  # counted at upload
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = owner.get(f"/app/files/{r.json()['id']}").json()
        seen.add(info["status"])
        if info["status"] == "ready":
            break
        time.sleep(0.05)
    assert info["status"] == "ready" and info["done"] == 20 and info["passages"] >= 20


# --- the API: /v1/files and files in a chat -------------------------------------------------
def test_v1_files_with_the_openai_sdk_and_a_chat_that_cites_page_3(stack: Stack) -> None:
    import openai

    token = stack.create_user("api-docs@example.com")
    other = stack.create_user("api-other@example.com")
    client = openai.OpenAI(base_url=stack.base_url + "/v1", api_key=token, max_retries=0)
    created = client.files.create(
        file=("report.pdf", docfiles.pdf_with_fact(5, 3), "application/pdf"), purpose="assistants"
    )
    assert created.id.startswith("file-") and created.filename == "report.pdf"
    assert created.status == "uploaded" and created.bytes > 0
    wait_until(
        lambda: client.files.retrieve(created.id).status in ("processed", "error"), 60, "indexing"
    )
    assert client.files.retrieve(created.id).status == "processed"
    assert [f.id for f in client.files.list().data] == [created.id]

    completion = client.chat.completions.create(
        model="hist",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is the launch code of the Zephyr project?"},
                    {"type": "file", "file": {"file_id": created.id}},
                ],
            }
        ],
    )
    content = completion.choices[0].message.content or ""
    assert "[1] report.pdf, page 3\n" + docfiles.FACT in content
    citations = (completion.model_extra or {})["citations"]
    assert citations[0] | {"text": ""} == {
        "n": 1,
        "file": created.id,
        "name": "report.pdf",
        "page": 3,
        "text": "",
    }
    # Streaming: the first chunk carries the citations; Kuwa's top-level "files" works too.
    stream = client.chat.completions.create(
        model="hist",
        messages=[{"role": "user", "content": "Zephyr launch code"}],
        stream=True,
        extra_body={"files": [created.id]},
    )
    chunks = list(stream)
    assert (chunks[0].model_extra or {})["citations"][0]["page"] == 3
    assert docfiles.FACT in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    # Kuwa's v1.0 API takes the same "files" list.
    v1 = httpx.post(
        stack.base_url + "/v1.0/chat/completions",
        headers={"authorization": f"Bearer {token}"},
        json={
            "model": "hist",
            "messages": [{"role": "user", "content": "Zephyr code?"}],
            "files": [created.id],
            "stream": False,
        },
        timeout=30,
    )
    assert v1.status_code == 200 and docfiles.FACT in v1.json()["choices"][0]["message"]["content"]

    # Someone else's file does not exist for them: not to read, delete or attach.
    intruder = openai.OpenAI(base_url=stack.base_url + "/v1", api_key=other, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        intruder.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        intruder.files.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        intruder.chat.completions.create(
            model="hist",
            messages=[{"role": "user", "content": "code?"}],
            extra_body={"files": [created.id]},
        )
    assert intruder.files.list().data == []
    raw = httpx.get(
        f"{stack.base_url}/v1/files/{created.id}/content",
        headers={"authorization": f"Bearer {token}"},
    )
    assert raw.status_code == 200 and raw.content.startswith(b"%PDF-")
    assert client.files.delete(created.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)


def test_v1_files_refuses_what_it_cannot_read(stack: Stack) -> None:
    token = stack.create_user("api-bad@example.com")
    auth = {"authorization": f"Bearer {token}"}
    url = stack.base_url + "/v1/files"
    r = httpx.post(url, headers=auth, files={"file": ("x.pdf", docfiles.locked_pdf())})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unreadable_document"
    r = httpx.post(url, headers=auth, files={"file": ("big.txt", b"x" * (1024 * 1024 + 1))})
    assert r.status_code == 413
    r = httpx.post(url, headers=auth, data={"purpose": "batch"}, files={"file": ("a.txt", b"a")})
    assert r.status_code == 400 and r.json()["error"]["param"] == "purpose"
    # The list's filter is checked too (found by schemathesis: any value gave an empty list).
    for query in ("purpose=batch", "purpose=null", "purpose=assistants&purpose=user_data"):
        r = httpx.get(f"{url}?{query}", headers=auth)
        assert r.status_code == 400 and r.json()["error"]["param"] == "purpose", (query, r.text)
    assert httpx.get(f"{url}?purpose=assistants", headers=auth).status_code == 200
    # A file still being indexed cannot be attached yet; a failed one says why.
    scan = httpx.post(url, headers=auth, files={"file": ("scan.pdf", docfiles.image_only_pdf())})
    file_id = scan.json()["id"]
    wait_until(
        lambda: httpx.get(f"{url}/{file_id}", headers=auth).json()["kuwa_status"] == "failed",
        60,
        "indexing",
    )
    chat = httpx.post(
        stack.base_url + "/v1/chat/completions",
        headers=auth,
        json={"model": "hist", "messages": [{"role": "user", "content": "hi"}], "files": [file_id]},
    )
    assert chat.status_code == 400 and "No text found" in chat.json()["error"]["message"]


# --- ranking, without processes -------------------------------------------------------------
def test_bm25_over_character_ngrams_ranks_traditional_chinese_and_english() -> None:
    from kuwa.documents.lexical import FileIndex, search, terms

    assert terms("台北市 Rain") == ["台", "北", "市", "台北", "北市", "rain"]
    first = FileIndex.build(["高雄的天氣很熱", "台北市今天下雨，記得帶傘", "Weather report"])  # noqa: RUF001
    second = FileIndex.build(["台中的太陽餅", "The rain in Spain stays mainly in the plain"])
    both = [FileIndex.from_bytes(first.to_bytes()), second]
    best = search(both, "台北會下雨嗎", 2)
    assert (best[0].source, best[0].passage) == (0, 1)
    top = search(both, "rain in spain", 1)[0]
    assert (top.source, top.passage) == (1, 1)
    assert search(both, "zzz", 3) == []


# --- bots with knowledge, and the room's export ---------------------------------------------
def test_a_bot_answers_from_its_knowledge_which_its_bot_file_carries(
    owner: App, outsider: App
) -> None:
    r = owner.post("/app/bots", {"name": "Zephyr expert", "base": "hist", "modelfile": ""})
    assert r.status_code == 201, r.text
    bot = r.json()
    up = owner.b.http.post(
        f"/app/bots/{bot['id']}/files",
        params={"name": "zephyr.pdf"},
        content=docfiles.pdf_with_fact(4, 3),
        headers={"x-csrftoken": owner.csrf},
    )
    assert up.status_code == 201, up.text
    fid = up.json()["id"]
    wait_until(lambda: owner.get(f"/app/files/{fid}").json()["status"] == "ready", 60, "index")
    assert outsider.get(f"/app/bots/{bot['id']}/files").status_code == 404
    assert outsider.get(f"/app/files/{fid}").status_code == 404

    room = owner.room([bot["code"], "hist"])
    with_bot, plain = owner.ask(room["id"], "What is the launch code of the Zephyr project?")
    assert with_bot["citations"][0]["file"] == fid and with_bot["citations"][0]["page"] == 3
    assert docfiles.FACT in with_bot["content"]
    assert plain["citations"] == [] and docfiles.FACT not in plain["content"]

    exported = owner.get(f"/app/bots/{bot['id']}/export")
    assert exported.status_code == 200 and b"Content-Location: /bot-knowledge/1" in exported.content
    imported = owner.b.http.post(
        "/app/bots/import", content=exported.content, headers={"x-csrftoken": owner.csrf}
    )
    assert imported.status_code == 201, imported.text
    copy = imported.json()
    files = owner.get(f"/app/bots/{copy['id']}/files").json()["files"]
    assert [f["name"] for f in files] == ["zephyr.pdf"] and files[0]["id"] != fid
    wait_until(
        lambda: owner.get(f"/app/files/{files[0]['id']}").json()["status"] == "ready", 60, "index"
    )


def test_the_room_export_carries_its_files_and_citations(owner: App) -> None:
    import base64

    room = owner.room(["hist"])
    data = docfiles.pdf_with_fact(3, 3)
    info = owner.indexed(room["id"], "report.pdf", data)
    owner.ask(room["id"], "Zephyr launch code")
    doc = owner.get(f"/app/rooms/{room['id']}/export?format=json").json()
    assert doc["messages"][1]["citations"][0]["page"] == 3
    (exported,) = doc["files"]
    assert exported["id"] == info["id"] and exported["name"] == "report.pdf"
    assert base64.b64decode(exported["content_base64"]) == data
    # Imported into another room, the file comes along (a new id) and is indexed again.
    other = owner.room(["hist"])
    raw = owner.get(f"/app/rooms/{room['id']}/export?format=json").content
    r = owner.b.http.post(
        f"/app/rooms/{other['id']}/import", content=raw, headers={"x-csrftoken": owner.csrf}
    )
    assert r.status_code == 201 and r.json()["files"] == 1, r.text
    (copy,) = owner.get(f"/app/rooms/{other['id']}/files").json()["files"]
    assert copy["name"] == "report.pdf" and copy["id"] != info["id"]
    wait_until(lambda: owner.get(f"/app/files/{copy['id']}").json()["status"] == "ready", 60)


# --- hybrid ranking with an embedding model -------------------------------------------------
def test_with_an_embedding_model_passages_are_ranked_by_meaning_too(tmp_path: Path) -> None:
    from kuwa.accounts import Accounts, close_database, open_database
    from kuwa.documents import Documents, Embedder, retrieve
    from kuwa.documents.indexing import Indexer
    from tests.embedserver import EmbeddingServer

    server = EmbeddingServer()
    settings = Settings(data_dir=tmp_path, embedding_url=server.url, embedding_model="hash-64")
    db = open_database(settings)
    try:
        user = Accounts(db, settings.load_secret_key()).create_user(
            "vectors@example.com", "V", "correct horse battery"
        )
        docs = Documents(db, settings)
        car = "The red car is parked by the harbour. " + "It waits there all day. " * 20
        text = f"{car}\n\n{'Lunch is soup on Mondays. ' * 25}\n".encode()
        row = docs.add(user.id, "notes.txt", text)
        assert Indexer(docs).run(int(row["id"])) == "ready"
        assert server.requests[-1]["model"] == "hash-64"
        (_, vectors) = docs.index_bytes([int(row["id"])])[int(row["id"])]
        assert vectors is not None  # the passages were embedded at indexing
        ids = [int(row["id"])]
        embedder = Embedder.from_settings(settings)
        # No word in common: BM25 alone finds nothing, by meaning the car passage is found.
        assert retrieve(docs, ids, "automobile", 3) == []
        found = retrieve(docs, ids, "automobile", 3, embedder)
        assert len(found) == 2 and "red car" in found[0]["text"]  # two passages, car first
        assert "red car" in retrieve(docs, ids, "汽車在哪裡", 3, embedder)[0]["text"]
        # The model down: BM25 alone, no error for the person asking.
        server.fail = True
        assert retrieve(docs, ids, "automobile", 3, embedder) == []
        assert "red car" in retrieve(docs, ids, "harbour car", 3, embedder)[0]["text"]
    finally:
        close_database(db)
        server.stop()


def test_kuwa_cli_bot_export_and_import_carry_the_knowledge(
    stack: Stack, owner: App, tmp_path: Path
) -> None:
    import subprocess
    import sys

    r = owner.post("/app/bots", {"name": "CLI knowledge", "base": "hist", "modelfile": ""})
    bot = r.json()
    up = owner.b.http.post(
        f"/app/bots/{bot['id']}/files",
        params={"name": "towns.csv"},
        content=docfiles.rows_csv(),
        headers={"x-csrftoken": owner.csrf},
    )
    assert up.status_code == 201, up.text

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kuwa", "bot", *args],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    out = tmp_path / "cli.bot"
    done = cli("export", "CLI knowledge", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert b"Content-Location: /bot-knowledge/1" in out.read_bytes()
    refused = cli("import", str(out))  # a system bot: whose would the knowledge be?
    assert refused.returncode == 1 and "--owner" in refused.stderr
    done = cli("import", str(out), "--owner", owner.email)
    assert done.returncode == 0 and "with 1 knowledge files" in done.stderr, done.stderr
    new_id = int(done.stderr.split("private bot ")[1].split(":")[0])
    files = owner.get(f"/app/bots/{new_id}/files").json()["files"]
    assert [f["name"] for f in files] == ["towns.csv"]
    wait_until(
        lambda: owner.get(f"/app/files/{files[0]['id']}").json()["status"] == "ready", 60, "index"
    )


def test_a_document_whose_indexing_job_dies_says_it_failed(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RQ calls indexing_failed for a job that raised, timed out or lost its worker."""
    import redis
    from rq.job import Job as RQJob

    from kuwa.accounts import Accounts, close_database, open_database
    from kuwa.documents import Documents
    from kuwa.documents.indexing import index_document, indexing_failed

    monkeypatch.setenv("KUWA_DATA_DIR", str(tmp_path))
    settings = Settings.from_env()
    db = open_database(settings)
    try:
        user = Accounts(db, settings.load_secret_key()).create_user(
            "died@example.com", "D", "correct horse battery"
        )
        docs = Documents(db, settings)
        row = docs.add(user.id, "notes.txt", b"some words")
        docs.mark(int(row["id"]), status="indexing")
        connection = redis.Redis.from_url(redis_url)
        job = RQJob.create(index_document, args=[int(row["id"])], connection=connection)
        indexing_failed(job, connection, TimeoutError, TimeoutError("job timed out"), None)
        failed = docs.by_id(int(row["id"]))
        assert failed is not None and failed["status"] == "failed"
        assert "Indexing stopped unexpectedly (TimeoutError)" in failed["error"]
        connection.close()
    finally:
        close_database(db)


def test_a_file_that_reads_too_long_is_stopped_with_a_clear_error() -> None:
    from kuwa.documents import sandbox
    from kuwa.documents.extract import ExtractError

    data = docfiles.pdf([docfiles.filler(n) for n in range(40)])
    assert len(sandbox.read(data, "pdf", 100, 60)) == 40
    started = time.monotonic()
    with pytest.raises(ExtractError, match="took too long"):
        sandbox.read(data, "pdf", 100, 0.05)  # the child is killed, the caller goes on
    assert time.monotonic() - started < 5
