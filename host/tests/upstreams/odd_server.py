"""A misbehaving MCP server on stdio, written without an SDK: it puts a
line that is not JSON before every answer and lists, besides a working
tool `good`, a tool `bad` whose input schema is not an object schema and
a tool `wide` whose name is too long to serve as is."""

import json
import sys

WIDE = "w" * 70

TOOLS = [
    {"name": "good", "description": "Answers.", "inputSchema": {"type": "object"}},
    {"name": "bad", "description": "Broken schema.", "inputSchema": {"type": "string"}},
    {"name": WIDE, "description": "A long name.", "inputSchema": {"type": "object"}},
]


def send(message):
    sys.stdout.write("this line is not JSON-RPC\n")
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    try:
        request = json.loads(line)
    except ValueError:
        continue
    if "id" not in request:
        continue
    method, rid = request.get("method"), request["id"]
    if method == "initialize":
        result = {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "odd", "version": "0"},
        }
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call":
        name = request["params"]["name"]
        result = {"content": [{"type": "text", "text": f"{name} answered"}]}
    elif method == "ping":
        result = {}
    else:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"no {method}"}})
        continue
    send({"jsonrpc": "2.0", "id": rid, "result": result})
