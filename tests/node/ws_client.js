// The Node `ws` client of tests/node_ws.rs: the scenarios of tests/clients/scenarios.js (the
// browser page runs the same ones) plus fragmented messages and a ping of the client's own,
// against the Python scenario upstream (tests/python/client_scenarios_server.py) through wsrelay.
//
// Usage: NODE_PATH=target/node-ws/node_modules node ws_client.js CA_FILE ORIGIN...
// Each ORIGIN is a WebSocket origin without a path (ws://127.0.0.1:P, wss://localhost:Q); wss
// connections trust CA_FILE only. Once the scenarios have run and a socket per origin is held
// open on /hold, the line `HOLDING {...}` is printed; when every hold socket has closed (the test
// stops the relay), one JSON line with all results, and the script exits.
"use strict";

const fs = require("fs");
const path = require("path");
const WebSocket = require("ws");
const { Socket, run, withTimeout } = require(path.join(__dirname, "..", "clients", "scenarios.js"));

const [caFile, ...origins] = process.argv.slice(2);
const ca = fs.readFileSync(caFile);

// A `ws` client (permessage-deflate offered, its default) as the scenarios' socket; its `raw`
// is the `ws` object, for what only Node does here.
function open(url, protocols) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols || [], { ca });
    const socket = new Socket(ws, []);
    ws.on("message", (data, binary) => socket.received(binary
      ? { data: new Uint8Array(data.buffer, data.byteOffset, data.length), binary: true }
      : { data: data.toString(), binary: false }));
    ws.on("ping", (data) => socket.pings.push(data.toString()));
    ws.once("close", (code, reason) => {
      socket.ended({ code, reason: reason.toString(), wasClean: code !== 1006 });
    });
    ws.on("error", reject);
    ws.once("open", () => resolve(socket));
  }), "open " + url);
}

const nodeOnly = {
  async fragments(base) {
    // One text message in three frames (FIN only on the last); the upstream reads it frame by
    // frame and reports what it got.
    const ws = await open(base + "/fragments");
    const parts = ["first fragment, ", "second fragment, ", "last fragment"];
    parts.forEach((part, i) => ws.raw.send(part, { fin: i === parts.length - 1 }));
    const answer = JSON.parse((await ws.next()).data);
    ws.close(1000);
    return { ok: answer.fragments === parts.length && answer.text === parts.join(""),
             sent_fragments: parts.length, upstream_fragments: answer.fragments, upstream_text: answer.text };
  },
  async client_ping(base) {
    // Our ping crosses the relay; the upstream's pong comes back with the same payload.
    const ws = await open(base + "/echo");
    const pong = withTimeout(new Promise((resolve) => ws.raw.once("pong", (data) => resolve(data.toString()))), "pong");
    ws.raw.ping("client-ping");
    const payload = await pong;
    ws.close(1000);
    return { ok: payload === "client-ping", pong_payload: payload };
  },
};

async function main() {
  const report = { node: process.version, ws: require("ws/package.json").version };
  const { allClosed } = await run(open, origins, nodeOnly, report, () => {});
  console.log("HOLDING " + JSON.stringify(report.hold));
  await withTimeout(allClosed, "the hold sockets to close");
  console.log(JSON.stringify(report));
}

main().then(() => process.exit(0), (e) => {
  console.log(JSON.stringify({ error: String(e) }));
  process.exit(1);
});
