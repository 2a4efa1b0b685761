"""Drive an MCP server with the official Python SDK.

Reads one JSON job from stdin:

    {"stdio": ["berth", "serve", ...]} or {"http": "http://127.0.0.1:PORT/mcp", "token": "..."},
    "mode": "legacy" | "2026-07-28",
    "ops": [...]

and prints one JSON array with a result per op. The Rust integration tests
decide what is right; this script only performs and records.
"""

import asyncio
import json
import os
import re
import shutil
import sys
import time
import urllib.request

import httpx2
from mcp import Client, StdioServerParameters, types
from mcp.client.streamable_http import streamable_http_client


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class Recorder:
    """Everything the server sent outside of direct responses."""

    def __init__(self):
        self.logs = []
        self.elicitations = []
        self.notifications = []
        self.elicit_answer = {"action": "decline"}

    async def on_log(self, params):
        self.logs.append(dump(params))

    async def on_elicit(self, context, params):
        self.elicitations.append(dump(params))
        return types.ElicitResult(**self.elicit_answer)

    async def on_message(self, message):
        if isinstance(message, Exception):
            self.notifications.append({"exception": str(message)})
        else:
            self.notifications.append(dump(message))


async def call(client, recorder, op):
    progress = []

    async def on_progress(value, total, message):
        progress.append({"progress": value, "total": total, "message": message})

    recorder.logs.clear()
    recorder.elicitations.clear()
    if "elicit" in op:
        recorder.elicit_answer = op["elicit"]
    started = time.monotonic()
    try:
        result = await client.call_tool(
            op["tool"], op.get("args"), progress_callback=on_progress if op.get("progress") else None
        )
        outcome = {"result": dump(result)}
    except Exception as err:  # the test asserts on the recorded error
        outcome = {"error": str(err), "code": getattr(getattr(err, "error", None), "code", None)}
    outcome.update(
        progress=progress,
        logs=list(recorder.logs),
        elicitations=list(recorder.elicitations),
        seconds=time.monotonic() - started,
    )
    return outcome


def resolve(value, earlier):
    """`value` with every string `{result[N].a.b}` replaced by that field
    of the structured result of op N: for ids an earlier call returned."""
    if isinstance(value, dict):
        return {k: resolve(v, earlier) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, earlier) for v in value]
    if isinstance(value, str):
        match = re.fullmatch(r"\{result\[(\d+)\]\.([\w.]+)\}", value)
        if match:
            found = earlier[int(match.group(1))]["result"]["structuredContent"]
            for part in match.group(2).split("."):
                found = found[part]
            return found
    return value


async def perform(client, recorder, op, earlier):
    kind = op["op"]
    if "args" in op:
        op = {**op, "args": resolve(op["args"], earlier)}
    if kind == "list_tools":
        result = await client.list_tools()
        return {"tools": [dump(t) for t in result.tools]}
    if kind == "call":
        return await call(client, recorder, op)
    if kind == "call_until":
        # Repeat a call until a field (a dotted path) of its structured
        # result has a value: for state a server reaches in the background.
        for attempt in range(1, op.get("attempts", 60) + 1):
            outcome = await call(client, recorder, op)
            value = (outcome.get("result") or {}).get("structuredContent")
            for part in op["field"].split("."):
                if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                    value = value[int(part)]
                else:
                    value = value.get(part) if isinstance(value, dict) else None
            if value == op["equals"]:
                return {**outcome, "attempts": attempt}
            await asyncio.sleep(op.get("delay", 0.25))
        return {**outcome, "attempts": None}
    if kind == "concurrent":
        # Separate recorders would race on logs; concurrent calls only record results.
        results = await asyncio.gather(*(call(client, Recorder(), c) for c in op["calls"]))
        return {"results": list(results)}
    if kind == "http_get":
        # GET the first endpoint an earlier call reported, off the event loop.
        endpoint = earlier[op["from_result"]]["result"]["structuredContent"]["endpoints"][0]
        def fetch():
            with urllib.request.urlopen(f"http://{endpoint}/", timeout=15) as reply:
                return reply.status, reply.read().decode()
        status, body = await asyncio.to_thread(fetch)
        return {"status": status, "body": body}
    if kind == "set_level":
        await client.set_logging_level(op["level"])
        return {"ok": True}
    if kind == "copy_file":
        os.makedirs(os.path.dirname(op["to"]), exist_ok=True)
        shutil.copyfile(op["from"], op["to"])
        return {"ok": True}
    if kind == "wait_notification":
        deadline = time.monotonic() + op.get("timeout", 10)
        while time.monotonic() < deadline:
            found = [n for n in recorder.notifications if n.get("method") == op["method"]]
            if found:
                return {"notification": found[0]}
            await asyncio.sleep(0.05)
        return {"timeout": True, "seen": recorder.notifications}
    raise ValueError(f"unknown op {kind!r}")


async def main():
    job = json.load(sys.stdin)
    recorder = Recorder()
    if "stdio" in job:
        command = job["stdio"]
        server = StdioServerParameters(command=command[0], args=command[1:], env=job.get("env"))
    else:
        headers = {"Authorization": f"Bearer {job['token']}"} if job.get("token") else {}
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0))
        server = streamable_http_client(job["http"], http_client=http)
    client = Client(
        server,
        mode=job.get("mode", "legacy"),
        logging_callback=recorder.on_log,
        elicitation_callback=recorder.on_elicit,
        message_handler=recorder.on_message,
        log_level=job.get("log_level"),
        read_timeout_seconds=120,
        cache=None,
    )
    results = []
    async with client:
        for op in job["ops"]:
            results.append(await perform(client, recorder, op, results))
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
