"""An upstream MCP server for berth's gateway tests, written with the
official Python SDK.

    demo_server.py stdio
    demo_server.py streamable-http PORT
    demo_server.py sse PORT

Its tools each exercise one thing berth must pass through: plain results,
progress and logs, cancellation, errors, large results, a secret in the
environment or a header, and a tool list that changes.
"""

import asyncio
import os
import sys
import warnings

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

# The SDK warns on every log message that logging is deprecated in the
# newest protocol; the tests read stderr, so keep it quiet.
warnings.filterwarnings("ignore")

server = MCPServer("demo")


@server.tool()
def echo(text: str) -> str:
    """Return `text` unchanged."""
    return text


@server.tool()
async def count(steps: int, ctx: Context) -> str:
    """Count to `steps`, reporting progress and logging each step."""
    for i in range(1, steps + 1):
        await ctx.report_progress(i, steps, f"step {i}")
        await ctx.info(f"counted {i}")
        await asyncio.sleep(0.02)
    return f"counted to {steps}"


@server.tool()
async def nap(seconds: float) -> str:
    """Sleep for `seconds`, then write the marker file DEMO_MARKER if set
    (a cancelled call never writes it)."""
    await asyncio.sleep(seconds)
    marker = os.environ.get("DEMO_MARKER")
    if marker:
        with open(marker, "w") as out:
            out.write("finished")
    return "rested"


@server.tool()
def token_echo() -> str:
    """Say the value of DEMO_TOKEN (berth must redact it)."""
    return f"token is {os.environ.get('DEMO_TOKEN', '<unset>')}"


@server.tool()
def authorized(ctx: Context) -> str:
    """Whether the request carried `Authorization: Bearer $DEMO_TOKEN`."""
    expected = f"Bearer {os.environ.get('DEMO_TOKEN', '')}"
    seen = (ctx.headers or {}).get("authorization")
    return "authorized" if seen == expected else "not authorized"


@server.tool()
def big(megabytes: int) -> str:
    """Return `megabytes` MiB of text."""
    return "x" * (megabytes << 20)


@server.tool()
def refuse() -> str:
    """Fail as a tool (an isError result)."""
    raise ToolError("the demo refuses")


@server.tool()
async def grow(ctx: Context) -> str:
    """Add the tool `extra` and say the tool list changed."""
    server.add_tool(lambda: "extra!", name="extra", description="Added at run time.")
    try:
        await ctx.session.send_tool_list_changed()
    except Exception:
        pass
    try:
        await ctx.notify_tools_changed()
    except Exception:
        pass
    return "grown"


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "stdio":
        server.run("stdio")
    else:
        server.run(mode, host="127.0.0.1", port=int(sys.argv[2]))


if __name__ == "__main__":
    main()
