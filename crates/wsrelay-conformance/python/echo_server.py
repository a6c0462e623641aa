"""Echo upstream for the conformance suite: Python `websockets`, echoing every message.

Prints its address (host:port) on the first line of stdout, then serves until killed.
No size limit, no keep-alive pings of its own, so only the driver's frames come back.
"""
import asyncio
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main():
    async with serve(echo, "127.0.0.1", 0, max_size=None, ping_interval=None,
                     compression=None, max_queue=None) as server:
        host, port = list(server.sockets)[0].getsockname()[:2]
        print(f"{host}:{port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
