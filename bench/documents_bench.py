"""Chat with documents: how fast a 1,000-page PDF is indexed, and how fast a room's passages
are ranked for a prompt with 10,000 passages (target: p99 at most 50 ms).

    python bench/documents_bench.py [--pages 1000] [--passages 10000] [--queries 1000]
                                    [--embedding-queries 300]

Indexing runs what the worker runs (the sandboxed child that reads the PDF, cutting into
passages, the BM25 index) on a PDF built here with fpdf2. Ranking runs ``retrieve`` — the
indexes of the room's documents (cached after the first prompt), BM25, the passages read back
from SQLite — over ten documents of synthetic English and Traditional Chinese passages, with
two- to eight-word prompts drawn from the same vocabulary; "cold" is the first prompt after a
gateway starts (indexes read from the database).

With an embedding model Kuwa serves (``KUWA_EMBEDDING_MODEL``), each prompt is also embedded
by an embedding job through Redis: a private redis-server and a debug embedding executor
(``--debug-transform embed``, whose model takes microseconds) show what that round trip costs
beside the model's own time, measured side by side.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parent.parent / "src")
sys.path.insert(0, SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))

from kuwa.accounts import Accounts, close_database, open_database  # noqa: E402
from kuwa.documents import sandbox  # noqa: E402
from kuwa.documents.lexical import FileIndex, search  # noqa: E402
from kuwa.documents.passages import Piece, split_pages  # noqa: E402
from kuwa.documents.retrieval import CACHE, retrieve  # noqa: E402
from kuwa.documents.service import Documents  # noqa: E402
from kuwa.settings import Settings  # noqa: E402

WORDS = [
    "report",
    "budget",
    "zephyr",
    "otter",
    "harbour",
    "council",
    "river",
    "bridge",
    "tunnel",
    "school",
    "library",
    "market",
    "festival",
    "weather",
    "rainfall",
    "typhoon",
    "earthquake",
    "railway",
    "station",
    "museum",
    "temple",
    "garden",
    "hospital",
    "clinic",
    "vaccine",
    "teacher",
    "student",
    "exam",
    "lunch",
    "menu",
    "soup",
    "noodle",
    "tea",
    "coffee",
]
HANZI = (
    "台北高雄台中台南花蓮淡水新竹基隆天氣颱風地震捷運車站博物館廟宇公園"
    "醫院學校老師學生考試午餐牛肉麵珍珠奶茶"
)


def sentence(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return "".join(rng.choice(HANZI) for _ in range(rng.randint(12, 30))) + "。"
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."


def passage(rng: random.Random, chars: int = 600) -> str:
    out = ""
    while len(out) < chars:
        out += sentence(rng) + " "
    return out.strip()


def bench_indexing(pages: int) -> None:
    from fpdf import FPDF

    rng = random.Random(1)
    doc = FPDF()
    doc.set_font("helvetica", size=10)
    for _ in range(pages):
        doc.add_page()
        text = " ".join(rng.choice(WORDS) for _ in range(330))  # about 2,300 characters a page
        doc.multi_cell(0, 5, text)
    data = bytes(doc.output())
    started = time.perf_counter()
    read = sandbox.read(data, "pdf", pages, 1800)
    extracted = time.perf_counter()
    pieces = split_pages(read)
    index = FileIndex.build([p.text for p in pieces])
    raw = index.to_bytes()
    built = time.perf_counter()
    total = built - started
    print(f"indexing a {pages}-page PDF ({len(data) / 2**20:.1f} MiB):")
    print(f"  text extraction (child process): {extracted - started:6.1f} s")
    print(f"  passages + BM25 index:           {built - extracted:6.1f} s")
    print(
        f"  total:                           {total:6.1f} s  ({pages / total:.0f} pages/s, "
        f"{len(pieces)} passages, index {len(raw) / 2**20:.1f} MiB)"
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_ranking(passages: int, queries: int) -> None:
    rng = random.Random(2)
    files = 10
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        db = open_database(settings)
        try:
            user = Accounts(db, settings.load_secret_key()).create_user(
                "bench@example.com", "Bench", "correct horse battery"
            )
            docs = Documents(db, settings)
            ids = []
            for f in range(files):
                row = docs.add(user.id, f"doc{f}.txt", b"bench")
                pieces = [Piece(p + 1, passage(rng)) for p in range(passages // files)]
                index = FileIndex.build([p.text for p in pieces])
                docs.save_index(int(row["id"]), pieces, len(pieces), index.to_bytes())
                ids.append(int(row["id"]))
            prompts = []
            for _ in range(queries):
                words = [rng.choice(WORDS) for _ in range(rng.randint(1, 5))]
                words.append("".join(rng.choice(HANZI) for _ in range(rng.randint(2, 6))))
                prompts.append(" ".join(words))
            CACHE.items.clear()
            CACHE.used = 0
            started = time.perf_counter()
            retrieve(docs, ids, prompts[0], 5)
            cold = (time.perf_counter() - started) * 1000
            full: list[float] = []
            ranking: list[float] = []
            cpu: list[float] = []
            indexes = [ix.lexical for _, ix in CACHE.get_many(docs, ids)]
            for prompt in prompts:
                t0 = time.perf_counter()
                search(indexes, prompt, 5)
                t1 = time.perf_counter()
                c1 = time.thread_time()
                found = retrieve(docs, ids, prompt, 5)
                c2 = time.thread_time()
                t2 = time.perf_counter()
                assert found, prompt
                ranking.append((t1 - t0) * 1000)
                full.append((t2 - t1) * 1000)
                cpu.append((c2 - c1) * 1000)
        finally:
            close_database(db)
    print(f"ranking {passages} passages in {files} documents, {queries} prompts (ms):")
    print("                      p50     p90     p99     max")
    rows = (("BM25 only", ranking), ("retrieve (+SQLite)", full), ("  its CPU time", cpu))
    for name, values in rows:
        print(
            f"  {name:18s} {statistics.median(values):6.2f}  {percentile(values, 0.9):6.2f}  "
            f"{percentile(values, 0.99):6.2f}  {max(values):6.2f}"
        )
    print(f"  first prompt, indexes read from the database: {cold:.1f} ms")


def bench_embedding_jobs(queries: int) -> None:
    import redis

    from kuwa import keys
    from kuwa.documents.embeddings import Embedder
    from kuwa.executors.debug import hashed_vector

    server = shutil.which("redis-server")
    if server is None:
        print("embedding jobs: skipped (no redis-server)")
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    procs = [
        subprocess.Popen(
            [server, "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
    ]
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        env = {**os.environ, "KUWA_REDIS_URL": url}
        command = [sys.executable, "-m", "kuwa", "executor", "start", "--backend", "debug"]
        command += ["--debug-transform", "embed", "--access-code", "embed"]
        procs.append(subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 30
        while not client.zcount(keys.queue_executors("embed"), time.time(), "+inf"):
            assert time.monotonic() < deadline, "the executor did not start"
            time.sleep(0.05)
        embedder = Embedder.from_settings(Settings(redis_url=url, embedding_model="embed"))
        assert embedder is not None
        rng = random.Random(3)
        prompts = [" ".join(rng.choice(WORDS) for _ in range(6)) for _ in range(queries)]
        embedder.embed(prompts[:1])  # the executor's first job
        model: list[float] = []
        job: list[float] = []
        for prompt in prompts:
            t0 = time.perf_counter()
            hashed_vector(prompt)
            t1 = time.perf_counter()
            embedder.embed([prompt])
            t2 = time.perf_counter()
            model.append((t1 - t0) * 1000)
            job.append((t2 - t1) * 1000)
        passages = [passage(rng) for _ in range(1000)]
        t0 = time.perf_counter()
        embedder.embed(passages)
        bulk = time.perf_counter() - t0
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(10)
    print(f"embedding a prompt with a model Kuwa serves, {queries} prompts (ms):")
    print("                            p50     p90     p99     max")
    for name, values in (("the model alone", model), ("an embedding job (Redis)", job)):
        print(
            f"  {name:24s} {statistics.median(values):6.2f}  {percentile(values, 0.9):6.2f}  "
            f"{percentile(values, 0.99):6.2f}  {max(values):6.2f}"
        )
    print(f"  1,000 passages at indexing (16 jobs of 64): {bulk * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--passages", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--embedding-queries", type=int, default=300)
    args = parser.parse_args()
    bench_ranking(args.passages, args.queries)
    if args.embedding_queries:
        bench_embedding_jobs(args.embedding_queries)
    bench_indexing(args.pages)


if __name__ == "__main__":
    main()
