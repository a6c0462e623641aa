"""Python `websockets` echo upstream with permessage-deflate (its default), for the tests.

Usage: deflate_echo_server.py
Prints {"port": N} on its first line, then echoes every message. The text message "?ext"
is answered instead with what this server saw of the negotiation: the client's (the gateway's)
Sec-WebSocket-Extensions offer and the extensions this server accepted (and the subprotocol,
none here).
"""
import asyncio
import json

from websockets.asyncio.server import serve

# The echo (and its "?ext" answer) is the browser and Node tests' upstream's.
from client_scenarios_server import echo as handler


async def main():
    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        await asyncio.get_running_loop().create_future()


asyncio.run(main())
