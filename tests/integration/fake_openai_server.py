"""A scripted OpenAI-compatible server for tests, run as its own process.

    python fake_openai_server.py [--port 0]

prints `PORT <n>` once it listens on 127.0.0.1. It speaks `POST /v1/chat/completions`
(plain JSON and `stream: true` server-sent events, tool calls included) and answers by
script, keyed on the last user message:

- contains "HANG": never answers (the client must time out);
- contains "FAIL500": HTTP 500 with an OpenAI-style error body;
- "what is X" / "about X" while a `describe_method` tool is offered: a tool call
  `describe_method(name=X)`; once the tool result comes back, text quoting the result's
  name and citation;
- "START_JSON {...}" while `start_analysis` is offered: a tool call `start_analysis` with
  exactly that JSON as its arguments; once the result comes back, text quoting the tool's
  error (`The server said: ...`) or the job (`Started job <id> with options <json>`);
- anything else: "Echo: <message> (<n> messages)".

`GET /_last_request` returns the last chat request body, so tests can check what the
client sent (settings, system prompt, history).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

METHOD_QUESTION = re.compile(r"(?:what is|about)\s+([A-Za-z][A-Za-z-]*)", re.IGNORECASE)
START_JSON = re.compile(r"START_JSON\s+(\{.*\})", re.DOTALL)
HANG_SECONDS = 600


class ScriptedReply:
    """What to send back: text, or one tool call."""

    def __init__(self, text: str | None = None, tool: tuple[str, dict[str, Any]] | None = None):
        self.text = text
        self.tool = tool


def script(body: dict[str, Any]) -> ScriptedReply:
    messages = body.get("messages", [])
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        result = json.loads(last.get("content") or "{}")
        if isinstance(result, dict) and "error" in result:
            return ScriptedReply(text=f"The server said: {result['error']}")
        if isinstance(result, dict) and "job_id" in result:
            options = json.dumps(result.get("options"), sort_keys=True)
            return ScriptedReply(text=f"Started job {result['job_id']} with options {options}")
        return ScriptedReply(
            text=f"From the catalog: {result.get('name')} — {result.get('summary')} "
            f"Cite: {result.get('citation')}"
        )
    user_text = _text(last.get("content"))
    offered = {t.get("function", {}).get("name") for t in body.get("tools", [])}
    start = START_JSON.search(user_text)
    if start and "start_analysis" in offered:
        return ScriptedReply(tool=("start_analysis", json.loads(start.group(1))))
    question = METHOD_QUESTION.search(user_text)
    if question and "describe_method" in offered:
        return ScriptedReply(tool=("describe_method", {"name": question.group(1)}))
    return ScriptedReply(text=f"Echo: {user_text} ({len(messages)} messages)")


def _text(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


class Handler(BaseHTTPRequestHandler):
    last_request: dict[str, Any] = {}

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/_last_request"):
            self._json(200, Handler.last_request)
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found"}})
            return
        Handler.last_request = body
        user_text = _text(body.get("messages", [{}])[-1].get("content"))
        if "HANG" in user_text:
            time.sleep(HANG_SECONDS)
            return
        if "FAIL500" in user_text:
            error = {"error": {"message": "scripted failure", "type": "server_error"}}
            self._json(500, error, {"x-should-retry": "false"})
            return
        reply = script(body)
        if body.get("stream"):
            self._stream(body, reply)
        else:
            self._json(200, completion(body, reply))

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict[str, Any], reply: ScriptedReply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for chunk in stream_chunks(body, reply):
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


def _envelope(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": kind,
        "created": int(time.time()),
        "model": body.get("model", "fake"),
    }


USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def completion(body: dict[str, Any], reply: ScriptedReply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    finish = "stop"
    if reply.tool:
        name, args = reply.tool
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
        ]
        finish = "tool_calls"
    choice = {"index": 0, "message": message, "finish_reason": finish}
    return {**_envelope(body, "chat.completion"), "choices": [choice], "usage": USAGE}


def stream_chunks(body: dict[str, Any], reply: ScriptedReply) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {**_envelope(body, "chat.completion.chunk"), "choices": [choice]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    if reply.tool:
        name, args = reply.tool
        arguments = json.dumps(args)
        first = {"index": 0, "id": "call_1", "type": "function"}
        chunks.append(
            chunk({"tool_calls": [{**first, "function": {"name": name, "arguments": ""}}]})
        )
        for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            chunks.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        chunks.append(chunk({}, "tool_calls"))
    else:
        for piece in re.findall(r"\S+\s*", reply.text or ""):
            chunks.append(chunk({"content": piece}))
        chunks.append(chunk({}, "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**_envelope(body, "chat.completion.chunk"), "choices": [], "usage": USAGE})
    return chunks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
