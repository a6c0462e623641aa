// The real-client scenarios, one copy for both clients: the browser page (tests/browser/page.html
// loads this file as a script) and the Node `ws` client (tests/node/ws_client.js requires it).
// Each client supplies `open(url, protocols)`, resolving once the socket is open to a `Socket`
// around its WebSocket object, which the client feeds with what arrives.
// The upstream is tests/python/client_scenarios_server.py behind wsrelay.
(function (exports) {
  "use strict";
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

  // Messages received, kept from the socket's start (one can arrive with the 101) until read.
  class Inbox {
    constructor() { this.items = []; this.waiters = []; this.ended = null; }
    push(message) {
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(message); else this.items.push(message);
    }
    end(close) {
      this.ended = close;
      for (const waiter of this.waiters.splice(0)) waiter.reject(this.closedError());
    }
    closedError() { return new Error("closed (" + this.ended.code + ") before a message"); }
    next() {
      if (this.items.length) return Promise.resolve(this.items.shift());
      if (this.ended) return Promise.reject(this.closedError());
      return withTimeout(new Promise((resolve, reject) => this.waiters.push({ resolve, reject })), "a message");
    }
  }

  // The scenarios' view of a client's WebSocket object `raw` (send, close, protocol and
  // extensions as in the browser's API, which `ws` shares). The client calls `received` with
  // each message ({data, binary}: a string, or a Uint8Array when binary) and `ended` with the
  // close ({code, reason, wasClean}); `pings` lists the payloads of pings received, or is null
  // where the client cannot see them.
  class Socket {
    constructor(raw, pings) {
      this.raw = raw;
      this.pings = pings;
      this.inbox = new Inbox();
      this.closed = new Promise((resolve) => { this.closedWith = resolve; });
    }
    send(data) { this.raw.send(data); }
    close(code, reason) { this.raw.close(code, reason); }
    next() { return this.inbox.next(); }
    get protocol() { return this.raw.protocol; }
    get extensions() { return this.raw.extensions; }
    received(message) { this.inbox.push(message); }
    ended(close) {
      this.inbox.end(close);
      this.closedWith(close);
    }
  }

  // FNV-1a (32 bit) over bytes: a checksum computed on both sides of the echo.
  function fnv1a(bytes) {
    let h = 0x811c9dc5;
    for (let i = 0; i < bytes.length; i++) {
      h ^= bytes[i];
      h = Math.imul(h, 0x01000193);
    }
    return (h >>> 0).toString(16).padStart(8, "0");
  }

  // Incompressible bytes from xorshift32, so a big message stays big under permessage-deflate.
  function noise(length, seed) {
    const out = new Uint8Array(length);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < length; i += 4) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      out[i] = x; out[i + 1] = x >>> 8; out[i + 2] = x >>> 16; out[i + 3] = x >>> 24;
    }
    return out;
  }

  const equalBytes = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

  // The scenarios both clients run; each returns its result with `ok` as judged here.
  function common(open) {
    return {
      async text(base) {
        const ws = await open(base + "/echo");
        const sent = "hello through wsrelay \u2713 \u00e9\u00e8 \ud83d\ude80";
        ws.send(sent);
        const got = await ws.next();
        ws.close(1000);
        return { ok: !got.binary && got.data === sent, sent, got: got.data };
      },
      async binary(base) {
        const ws = await open(base + "/echo");
        const sent = new Uint8Array(256).map((_, i) => i);
        ws.send(sent);
        const got = await ws.next();
        ws.close(1000);
        return { ok: got.binary && equalBytes(got.data, sent), length: got.data.length, binary: got.binary };
      },
      async big(base) {
        const ws = await open(base + "/echo");
        const sent = noise(16 * 1024 * 1024, 0x5eed);
        const started = Date.now();
        ws.send(sent);
        const got = await ws.next();
        const ms = Date.now() - started;
        ws.close(1000);
        const [sentSum, gotSum] = [fnv1a(sent), fnv1a(got.data)];
        return { ok: got.binary && equalBytes(got.data, sent), sent_length: sent.length,
                 got_length: got.data.length, sent_fnv1a: sentSum, got_fnv1a: gotSum, ms };
      },
      async subprotocol(base) {
        const offered = ["wsrelay.v1", "wsrelay.v2"];
        const ws = await open(base + "/echo", offered);
        const protocol = ws.protocol;
        ws.send("?ext");
        const upstream = JSON.parse((await ws.next()).data);
        ws.close(1000);
        return { ok: protocol === "wsrelay.v2" && upstream.subprotocol === "wsrelay.v2",
                 offered, protocol, upstream_chose: upstream.subprotocol };
      },
      async deflate(base) {
        const ws = await open(base + "/deflate");
        const extensions = ws.extensions;
        ws.send("?ext");
        const upstream = JSON.parse((await ws.next()).data);
        // 256 KiB of very compressible text: on the wire through the relay it is a few KiB.
        const sent = "wsrelay passes compressed frames through untouched. ".repeat(6000).slice(0, 256 * 1024);
        ws.send(sent);
        const got = (await ws.next()).data;
        ws.close(1000, "deflate done");
        return { ok: extensions.startsWith("permessage-deflate") && got === sent,
                 extensions, upstream_offer: upstream.offer, upstream_accepted: upstream.accepted,
                 payload_bytes: sent.length, echoed: got === sent };
      },
      async upstream_close(base) {
        const ws = await open(base + "/close");
        ws.send("close me");
        const close = await withTimeout(ws.closed, "close");
        return { ok: close.code === 4000 && close.reason === "bye" && close.wasClean !== false, ...close };
      },
      async upstream_ping(base) {
        // The client answers the upstream's ping by itself; the upstream reports the pong.
        const ws = await open(base + "/ping");
        const answer = JSON.parse((await ws.next()).data);
        ws.close(1000);
        const pings = ws.pings;
        const seen = pings === null || (pings.length === 1 && pings[0] === "upstream-ping");
        return { ok: answer.pong === true && seen, answer, pings };
      },
    };
  }

  // Opens a socket on /hold and checks it echoes; the entry records the close when it comes.
  async function hold(open, base, show) {
    const entry = { state: "opening", close: null };
    const ws = await open(base + "/hold");
    const whenClosed = ws.closed.then((close) => {
      entry.state = "closed";
      entry.close = close;
      show();
    });
    ws.send("held");
    const echoed = (await ws.next()).data;
    entry.state = echoed === "held" ? "open" : "bad echo";
    return { entry, whenClosed };
  }

  // Runs the common scenarios and `extra` (name -> async (base) => result) against each origin,
  // into report.runs[origin][name]; then holds a socket open per origin (report.hold[origin]).
  // Calls `show` after each step. Resolves, once the hold sockets are open, to { allClosed }: a
  // promise that settles when every hold socket has closed.
  async function run(open, origins, extra, report, show) {
    const scenarios = Object.assign(common(open), extra);
    report.runs = {};
    report.hold = {};
    for (const base of origins) {
      const results = {};
      report.runs[base] = results;
      for (const [name, scenario] of Object.entries(scenarios)) {
        try {
          results[name] = await scenario(base);
        } catch (e) {
          results[name] = { ok: false, error: String(e) };
        }
        show();
      }
    }
    const closing = [];
    for (const base of origins) {
      try {
        const { entry, whenClosed } = await hold(open, base, show);
        report.hold[base] = entry;
        closing.push(whenClosed);
      } catch (e) {
        report.hold[base] = { state: "failed", error: String(e), close: null };
      }
      show();
    }
    return { allClosed: Promise.all(closing) };
  }

  exports.withTimeout = withTimeout;
  exports.Socket = Socket;
  exports.run = run;
})(typeof module !== "undefined" ? module.exports : (window.wsrelayScenarios = {}));
