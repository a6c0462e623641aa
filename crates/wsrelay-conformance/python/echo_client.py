"""Echoing client for the conformance suite's other direction (driver as upstream).

Connects to each URL given on the command line, one after the other; echoes every message
it receives (pings are answered by the library); when the connection ends prints one JSON
line: {"url": ..., "code": close code it received, "reason": ..., "messages": n}.
"""
import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def one(url):
    report = {"url": url}
    try:
        async with connect(url, max_size=None, ping_interval=None, compression=None,
                           max_queue=None, open_timeout=10, close_timeout=5) as ws:
            count = 0
            try:
                async for message in ws:
                    count += 1
                    await ws.send(message)
            except ConnectionClosed:
                pass
            report["messages"] = count
        rcvd = ws.protocol.close_rcvd
        report["code"] = rcvd.code if rcvd is not None else None
        report["reason"] = rcvd.reason if rcvd is not None else None
    except Exception as e:  # a refused or broken connection is a result too
        report["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(report), flush=True)


async def main(urls):
    for url in urls:
        try:
            await asyncio.wait_for(one(url), timeout=60)
        except asyncio.TimeoutError:
            print(json.dumps({"url": url, "error": "timed out after 60 s"}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
