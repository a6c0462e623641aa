"""Python `websockets` client with permessage-deflate (its default), for the tests.

Usage: deflate_client.py URL
Sends text (ASCII, non-ASCII, a large compressible one) and binary messages, checks each
echo, asks the upstream what it negotiated ("?ext"), and prints one JSON line with the
extensions seen on both ends and the payload bytes sent.
"""
import asyncio
import json
import os
import sys

from websockets.asyncio.client import connect


async def main(url: str) -> None:
    results = {"messages": 0, "payload_bytes": 0}
    async with connect(url, max_size=None) as ws:
        results["client_accepted"] = ws.response.headers.get("Sec-WebSocket-Extensions")
        messages = [
            "hello through a compressing relay",
            "κόσμε ✓ 日本語 " * 50,
            "wsrelay " * 131072,  # 1 MiB of text, very compressible
            bytes(range(256)) * 4096,  # 1 MiB binary, compressible
            os.urandom(65536),  # incompressible: sent with or without RSV1 as the sender likes
        ]
        for message in messages:
            await ws.send(message)
            echoed = await ws.recv()
            assert echoed == message, f"message of {len(message)} changed"
            results["messages"] += 1
            results["payload_bytes"] += len(message.encode() if isinstance(message, str) else message)
        await ws.send("?ext")
        results["upstream"] = json.loads(await ws.recv())
        await ws.close(code=1000)
    print(json.dumps(results))


asyncio.run(main(sys.argv[1]))
