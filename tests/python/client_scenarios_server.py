"""Python `websockets` upstream for the real-client tests (Chromium, Node `ws`).

Usage: client_scenarios_server.py
Prints {"port": N} on its first line. permessage-deflate is accepted (the library's default).
Of the subprotocols a client offers, the LAST one is chosen, so a test sees the upstream's choice
rather than a default. What a connection does depends on its path:

  /close       closes with 4000 "bye" when the first message arrives
  /ping        sends a ping ("upstream-ping"); when the client's pong comes back, sends the text
               {"pong": true}
  /fragments   reads one message frame by frame and answers {"fragments": N, "text": "..."}
  anything     echoes every message; the text "?ext" is answered with what this server saw of
               the negotiation: the client's (the gateway's) Sec-WebSocket-Extensions offer, the
               extensions it accepted and the subprotocol chosen
"""
import asyncio
import json

from websockets.asyncio.server import serve


def last_offered(connection, offered):
    return offered[-1] if offered else None


async def echo(ws):
    async for message in ws:
        if message == "?ext":
            await ws.send(json.dumps({
                "offer": ws.request.headers.get("Sec-WebSocket-Extensions"),
                "accepted": ws.response.headers.get("Sec-WebSocket-Extensions"),
                "subprotocol": ws.subprotocol,
            }))
        else:
            await ws.send(message)


async def close_with_4000(ws):
    await ws.recv()
    await ws.close(4000, "bye")


async def ping_the_client(ws):
    pong = await ws.ping(b"upstream-ping")
    await asyncio.wait_for(pong, 10)
    await ws.send(json.dumps({"pong": True}))
    await echo(ws)


async def count_fragments(ws):
    parts = [part async for part in ws.recv_streaming()]
    text = "".join(p if isinstance(p, str) else p.decode() for p in parts)
    await ws.send(json.dumps({"fragments": len(parts), "text": text}))
    await echo(ws)


async def handler(ws):
    path = ws.request.path.split("?")[0]
    if path == "/close":
        await close_with_4000(ws)
    elif path == "/ping":
        await ping_the_client(ws)
    elif path == "/fragments":
        await count_fragments(ws)
    else:
        await echo(ws)


async def main():
    async with serve(handler, "127.0.0.1", 0, max_size=None,
                     select_subprotocol=last_offered) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main())
