// The official Node `socket.io-client` in its default mode (long-polling first, then the
// upgrade to a WebSocket), through wsrelay: connects, exchanges events both ways before and
// after the upgrade, and prints one JSON line with what it saw.
const { io } = require("socket.io-client");

const url = process.argv[2];
const socket = io(url, { withCredentials: true, reconnection: false, timeout: 5000 });
const seen = { welcome: null, first: null, upgraded: null, after: [], pushed: [], errors: [] };

function finish(code) {
  seen.final_transport = socket.io.engine ? socket.io.engine.transport.name : null;
  console.log(JSON.stringify(seen));
  socket.close();
  process.exit(code);
}

setTimeout(() => {
  seen.errors.push("timed out");
  finish(1);
}, 15000);

socket.on("connect_error", (e) => {
  seen.errors.push(String(e && e.message));
  finish(1);
});
socket.on("welcome", (w) => (seen.welcome = w));
socket.on("pushed", (p) => seen.pushed.push(p));
socket.on("connect", () => {
  const engine = socket.io.engine;
  seen.first_transport = engine.transport.name;
  socket.emit("echo", { n: 0, text: "first" }, (reply) => (seen.first = reply));
  const upgraded = (transport) => {
    seen.upgraded = transport.name;
    let answered = 0;
    for (let n = 1; n <= 3; n++) {
      socket.emit("echo", { n, text: "over websocket" }, (reply) => {
        seen.after.push(reply);
        answered += 1;
        if (answered === 3) setTimeout(() => finish(0), 200);
      });
    }
  };
  // The upgrade may have finished before the Socket.IO connect came back.
  if (engine.transport.name === "websocket") upgraded(engine.transport);
  else engine.once("upgrade", upgraded);
});
