"""A real OpenAI-compatible ``/v1/embeddings`` server for tests, with a deterministic model.

The "model" hashes words (and CJK characters) into a small vector after mapping a few
synonyms onto one word ("automobile" and "汽車" mean "car"), so a test can tell ranking by
meaning from ranking by the words themselves. ``fail`` makes every request a 500.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIM = 64
SYNONYMS = {"automobile": "car", "vehicle": "car", "汽車": "car", "cars": "car"}
_WORD = re.compile(r"[a-z]+|[\u4e00-\u9fff]{2}")


def embed(text: str) -> list[float]:
    vector = [0.0] * DIM
    for word in _WORD.findall(text.lower()):
        word = SYNONYMS.get(word, word)
        slot = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little") % DIM
        vector[slot] += 1.0
    return vector


class EmbeddingServer:
    def __init__(self) -> None:
        self.fail = False
        self.requests: list[dict[str, object]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                server.requests.append(body)
                if server.fail or self.path != "/v1/embeddings":
                    self.send_response(500 if server.fail else 404)
                    self.end_headers()
                    return
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                data = [
                    {"object": "embedding", "index": i, "embedding": embed(t)}
                    for i, t in enumerate(texts)
                ]
                out = json.dumps({"object": "list", "data": data, "model": body.get("model")})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(out.encode())

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
