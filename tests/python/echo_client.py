"""Python `websockets` client used by the end-to-end tests: a real client from another ecosystem.

Usage: echo_client.py URL
Sends text and binary messages of several sizes through wsrelay to an echo upstream, checks each
echo, checks the negotiated subprotocol, closes with 4000, and prints one JSON line with results.
"""
import asyncio
import json
import sys

from websockets.asyncio.client import connect


async def main(url: str) -> None:
    results = {"messages": 0}
    async with connect(url, subprotocols=["v12.stomp"], max_size=None) as ws:
        results["subprotocol"] = ws.subprotocol
        for size in (0, 1, 125, 126, 65535, 65536, 1 << 20):
            text = ("wsrelay ✓ " * (size // 10 + 1))[:size]
            await ws.send(text)
            echoed = await ws.recv()
            assert echoed == text, f"text of {size} chars changed"
            data = bytes(i % 251 for i in range(size))
            await ws.send(data)
            echoed = await ws.recv()
            assert echoed == data, f"binary of {size} bytes changed"
            results["messages"] += 2
        # A fragmented message: websockets sends an iterable as fragments.
        await ws.send(["frag-1 ", "frag-2 ", "frag-3"])
        assert await ws.recv() == "frag-1 frag-2 frag-3"
        results["messages"] += 1
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        results["pong"] = True
        await ws.close(code=4000, reason="python done")
        results["close_code"] = ws.close_code
        results["close_reason"] = ws.close_reason
    print(json.dumps(results))


asyncio.run(main(sys.argv[1]))
