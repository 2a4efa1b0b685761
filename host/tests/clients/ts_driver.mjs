// Drive an MCP server over streamable HTTP with the official TypeScript
// SDK v2 client (@modelcontextprotocol/client).
//
// Reads one JSON job from stdin, {"http": URL, "token": T, "ops": [...]},
// with ops `list_tools`, `call` (tool, args, progress) and `call_until`
// (tool, args, field, equals, attempts, delay), and prints one JSON array
// with a result per op. BERTH_TS_CLIENT names the directory the SDK is
// installed in (its node_modules). The Rust tests decide what is right.

import { pathToFileURL } from "node:url";
import path from "node:path";

const sdk = await import(
  pathToFileURL(
    path.join(process.env.BERTH_TS_CLIENT, "node_modules/@modelcontextprotocol/client/dist/index.mjs"),
  ).href
);

let input = "";
for await (const chunk of process.stdin) input += chunk;
const job = JSON.parse(input);

const transport = new sdk.StreamableHTTPClientTransport(new URL(job.http), {
  requestInit: { headers: { Authorization: `Bearer ${job.token}` } },
});
const client = new sdk.Client({ name: "berth-ts-test", version: "0" });
await client.connect(transport);

async function call(op) {
  const progress = [];
  const options = op.progress ? { onprogress: (p) => progress.push(p) } : undefined;
  try {
    const result = await client.callTool({ name: op.tool, arguments: op.args ?? {} }, options);
    return { result, progress };
  } catch (err) {
    return { error: String(err), progress };
  }
}

function field(outcome, dotted) {
  let value = outcome.result?.structuredContent;
  for (const part of dotted.split(".")) value = value == null ? undefined : value[part];
  return value;
}

const results = [];
for (const op of job.ops) {
  if (op.op === "list_tools") {
    results.push({ tools: (await client.listTools()).tools });
  } else if (op.op === "call") {
    results.push(await call(op));
  } else if (op.op === "call_until") {
    let outcome;
    let attempts = null;
    for (let i = 1; i <= (op.attempts ?? 60); i++) {
      outcome = await call(op);
      if (field(outcome, op.field) === op.equals) {
        attempts = i;
        break;
      }
      await new Promise((r) => setTimeout(r, (op.delay ?? 0.25) * 1000));
    }
    results.push({ ...outcome, attempts });
  } else {
    throw new Error(`unknown op ${op.op}`);
  }
}
console.log(JSON.stringify(results));
await client.close();
