"""The web UI. For now a landing page that says what is running and how to call it."""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kuwa</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;
color:#1f2933;line-height:1.5}}
code,pre{{background:#f1f3f5;border-radius:4px;padding:.1rem .3rem}}
pre{{padding:.8rem;overflow-x:auto}}
</style></head><body>
<h1>Kuwa is running</h1>
<p>Chat with many LLMs at once. The web chat arrives in a later release; the API works now.</p>
<h2>Try the API</h2>
<pre>curl -N {base}/v1/chat/completions \\
  -H "Authorization: Bearer $(kuwa-cli user token --email admin@localhost)" \\
  -H "Content-Type: application/json" \\
  -d '{{"model": "echo", "stream": true,
       "messages": [{{"role": "user", "content": "Hello, Kuwa!"}}]}}'</pre>
<p>Models with a live executor: <code>GET {base}/v1/models</code>.
Health: <a href="{base}/healthz">/healthz</a>.</p>
</body></html>"""


async def index(request: Request) -> Response:
    base = escape(str(request.base_url).rstrip("/"))
    return HTMLResponse(_PAGE.format(base=base))


def routes() -> list[BaseRoute]:
    return [Route("/", index, methods=["GET"])]
