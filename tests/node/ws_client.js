// The Node `ws` client of tests/node_ws.rs: the browser page's scenarios (tests/browser/page.html)
// plus fragmented messages and pings both ways, against the Python scenario upstream
// (tests/python/client_scenarios_server.py) through wsrelay.
//
// Usage: NODE_PATH=target/node-ws/node_modules node ws_client.js CA_FILE ORIGIN...
// Each ORIGIN is a WebSocket origin without a path (ws://127.0.0.1:P, wss://localhost:Q); wss
// connections trust CA_FILE only. Every scenario runs against every origin; then one socket per
// origin is opened on /hold and the line HOLDING is printed; when every hold socket has closed
// (the test stops the relay), one JSON line with all results is printed and the script exits.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const WebSocket = require("ws");

const [caFile, ...origins] = process.argv.slice(2);
const ca = fs.readFileSync(caFile);
const TIMEOUT_MS = 20000;

function withTimeout(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("timed out: " + what)), TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Opens a socket (permessage-deflate offered, as `ws` does by default); resolves once open.
// Pings received are recorded in `ws.pings` from the start: one can arrive with the 101.
function open(url, protocols) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols || [], { ca });
    ws.pings = [];
    ws.on("ping", (data) => ws.pings.push(data.toString()));
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  }), "open " + url);
}

// The next message on `ws`, as {data, isBinary}.
function next(ws) {
  return withTimeout(new Promise((resolve, reject) => {
    const onClose = (code) => reject(new Error("closed (" + code + ") before a message"));
    ws.once("close", onClose);
    ws.once("message", (data, isBinary) => {
      ws.off("close", onClose);
      resolve({ data, isBinary });
    });
  }), "a message");
}

// Resolves with {code, reason} when `ws` closes.
function closed(ws) {
  return withTimeout(new Promise((resolve) => {
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() }));
  }), "close");
}

const sha256 = (bytes) => crypto.createHash("sha256").update(bytes).digest("hex");

const scenarios = {
  async text(base) {
    const ws = await open(base + "/echo");
    const sent = "hello through wsrelay \u2713 \u00e9\u00e8 \ud83d\ude80";
    ws.send(sent);
    const got = await next(ws);
    ws.close(1000);
    const text = got.data.toString();
    return { ok: !got.isBinary && text === sent, sent, got: text };
  },
  async binary(base) {
    const ws = await open(base + "/echo");
    const sent = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    ws.send(sent);
    const got = await next(ws);
    ws.close(1000);
    return { ok: got.isBinary && sent.equals(got.data), length: got.data.length, binary: got.isBinary };
  },
  async big(base) {
    const ws = await open(base + "/echo");
    const sent = crypto.randomBytes(16 * 1024 * 1024);
    const started = Date.now();
    ws.send(sent);
    const got = await next(ws);
    const ms = Date.now() - started;
    ws.close(1000);
    const [sentSum, gotSum] = [sha256(sent), sha256(got.data)];
    return { ok: got.isBinary && got.data.length === sent.length && gotSum === sentSum,
             sent_length: sent.length, got_length: got.data.length, sent_sha256: sentSum,
             got_sha256: gotSum, ms };
  },
  async subprotocol(base) {
    const offered = ["wsrelay.v1", "wsrelay.v2"];
    const ws = await open(base + "/echo", offered);
    const protocol = ws.protocol;
    ws.send("?ext");
    const upstream = JSON.parse((await next(ws)).data.toString());
    ws.close(1000);
    return { ok: protocol === "wsrelay.v2" && upstream.subprotocol === "wsrelay.v2",
             offered, protocol, upstream_chose: upstream.subprotocol };
  },
  async deflate(base) {
    const ws = await open(base + "/deflate");
    const extensions = ws.extensions;
    ws.send("?ext");
    const upstream = JSON.parse((await next(ws)).data.toString());
    // 256 KiB of very compressible text: on the wire through the relay it is a few KiB.
    const sent = "wsrelay passes compressed frames through untouched. ".repeat(6000).slice(0, 256 * 1024);
    ws.send(sent);
    const got = (await next(ws)).data.toString();
    ws.close(1000, "deflate done");
    return { ok: extensions.startsWith("permessage-deflate") && got === sent,
             extensions, upstream_offer: upstream.offer, upstream_accepted: upstream.accepted,
             payload_bytes: sent.length, echoed: got === sent };
  },
  async upstream_close(base) {
    const ws = await open(base + "/close");
    const done = closed(ws);
    ws.send("close me");
    const close = await done;
    return { ok: close.code === 4000 && close.reason === "bye", ...close };
  },
  async upstream_ping(base) {
    // `ws` answers the upstream's ping by itself; the upstream reports the pong.
    const ws = await open(base + "/ping");
    const answer = JSON.parse((await next(ws)).data.toString());
    ws.close(1000);
    const pings = ws.pings;
    return { ok: pings.length === 1 && pings[0] === "upstream-ping" && answer.pong === true, pings, answer };
  },
  async fragments(base) {
    // One text message in three frames (FIN only on the last); the upstream reads it frame by
    // frame and reports what it got.
    const ws = await open(base + "/fragments");
    const parts = ["first fragment, ", "second fragment, ", "last fragment"];
    parts.forEach((part, i) => ws.send(part, { fin: i === parts.length - 1 }));
    const answer = JSON.parse((await next(ws)).data.toString());
    ws.close(1000);
    return { ok: answer.fragments === parts.length && answer.text === parts.join(""),
             sent_fragments: parts.length, upstream_fragments: answer.fragments, upstream_text: answer.text };
  },
  async client_ping(base) {
    // Our ping crosses the relay; the upstream's pong comes back with the same payload.
    const ws = await open(base + "/echo");
    const pong = withTimeout(new Promise((resolve) => ws.once("pong", (data) => resolve(data.toString()))), "pong");
    ws.ping("client-ping");
    const payload = await pong;
    ws.close(1000);
    return { ok: payload === "client-ping", pong_payload: payload };
  },
};

// Opens a socket on /hold and checks it echoes; `closed` resolves when the relay closes it.
async function hold(base) {
  const entry = { state: "opening", close: null };
  const ws = await open(base + "/hold");
  const whenClosed = new Promise((resolve) => {
    ws.once("close", (code, reason) => {
      entry.state = "closed";
      entry.close = { code, reason: reason.toString() };
      resolve();
    });
  });
  ws.send("held");
  const echoed = (await next(ws)).data.toString();
  entry.state = echoed === "held" ? "open" : "bad echo";
  return { entry, whenClosed };
}

async function main() {
  const report = { node: process.version, ws: require("ws/package.json").version, runs: {}, hold: {} };
  for (const base of origins) {
    const run = {};
    report.runs[base] = run;
    for (const [name, scenario] of Object.entries(scenarios)) {
      try {
        run[name] = await scenario(base);
      } catch (e) {
        run[name] = { ok: false, error: String(e) };
      }
    }
  }
  const closing = [];
  for (const base of origins) {
    try {
      const { entry, whenClosed } = await hold(base);
      report.hold[base] = entry;
      closing.push(whenClosed);
    } catch (e) {
      report.hold[base] = { state: "failed", error: String(e), close: null };
    }
  }
  console.log("HOLDING " + JSON.stringify(report.hold));
  await withTimeout(Promise.all(closing), "the hold sockets to close");
  console.log(JSON.stringify(report));
}

main().then(() => process.exit(0), (e) => {
  console.log(JSON.stringify({ error: String(e) }));
  process.exit(1);
});
