// Two Socket.IO servers (Node `socket.io`), one per port given, each naming itself in what it
// sends: the backends of tests/socketio.rs. Prints "ready" once both listen.
const http = require("http");
const { Server } = require("socket.io");

const ports = process.argv.slice(2).map(Number);
let listening = 0;
for (const [i, port] of ports.entries()) {
  const name = `backend-${i}`;
  const server = http.createServer((req, res) => {
    res.writeHead(404);
    res.end();
  });
  const io = new Server(server, { pingInterval: 2000, pingTimeout: 5000 });
  io.on("connection", (socket) => {
    socket.emit("welcome", { backend: name, transport: socket.conn.transport.name });
    socket.on("echo", (payload, ack) => {
      ack({ backend: name, transport: socket.conn.transport.name, payload });
      socket.emit("pushed", { backend: name, n: payload.n });
    });
  });
  server.listen(port, "127.0.0.1", () => {
    listening += 1;
    if (listening === ports.length) console.log("ready");
  });
}
