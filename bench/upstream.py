"""A cheap upstream that speaks OpenAI's chat completions: nginx returning fixed bodies.

``POST /v1/chat/completions`` answers a fixed JSON completion, and
``POST /stream/v1/chat/completions`` a fixed stream of 20 content chunks (the
benchmark's gateway serves it as a second model whose endpoint ends in
``/stream/v1``). nginx serves static files only to GET, so a 405 is turned
into a 200 with the file.
nginx answers tens of thousands of requests a second on one core, so it is
never what the benchmark measures.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench import procs

CHUNKS = 20


def completion_body() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "bench-upstream",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "logprobs": None,
                    "message": {"role": "assistant", "content": "The answer is forty-two. " * 8},
                }
            ],
            "usage": {"prompt_tokens": 250, "completion_tokens": 60, "total_tokens": 310},
        }
    ).encode()


def stream_body() -> bytes:
    def chunk(delta: dict[str, object], finish: str | None = None, usage: object = None) -> str:
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "bench-upstream",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if usage is not None:
            body = {**body, "choices": [], "usage": usage}
        return f"data: {json.dumps(body)}\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": f"word{i} "}) for i in range(CHUNKS)]
    events.append(chunk({}, "stop"))
    events.append(
        chunk({}, None, {"prompt_tokens": 250, "completion_tokens": 20, "total_tokens": 270})
    )
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_buffer_size 64k;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port};
        location = /v1/chat/completions {{
            default_type application/json;
            alias {root}/completion.json;
            error_page 405 =200 $uri;
        }}
        location = /stream/v1/chat/completions {{
            default_type text/event-stream;
            alias {root}/stream.sse;
            error_page 405 =200 $uri;
        }}
        location = /health {{ return 200 "ok"; }}
    }}
}}
"""


def start_nginx(work: Path, cpus: str | None) -> procs.Service:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    root = work / "nginx"
    root.mkdir(parents=True, exist_ok=True)
    (root / "completion.json").write_bytes(completion_body())
    (root / "stream.sse").write_bytes(stream_body())
    port = procs.free_port()
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, port=port))
    url = f"http://127.0.0.1:{port}"
    return procs.start(
        "nginx",
        [nginx, "-c", str(conf), "-p", str(root)],
        procs.Ready(url, "/health"),
        cpus=cpus,
        log_dir=work,
    )
