#!/usr/bin/env python3
"""Writes the checked-in seed corpus of the codec and relay fuzz targets.

Seeds are corpus/<target>/seed-<name>; libFuzzer's own finds (other names) are git-ignored.
The handshake targets' seeds are written separately. Run from anywhere:
    python3 fuzz/make_seeds.py
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])


def mask(payload, key=KEY):
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def frame(opcode, payload=b"", fin=True, rsv=0, key=None, length=None):
    """One frame; `key` masks it (a client's frame), `length` overrides the declared length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    bit = 0x80 if key else 0
    if n <= 125:
        head += bytes([bit | n])
    elif n <= 0xFFFF:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if key:
        return head + key + mask(payload, key)
    return head + payload


def close(code, reason=b""):
    return struct.pack(">H", code) + reason


def relay(knobs, sizes, stream):
    """The relay target's layout: knobs, chunk-plan byte, 1-4 chunk sizes, the stream."""
    assert 1 <= len(sizes) <= 4
    return bytes([knobs, len(sizes) - 1]) + bytes(sizes) + stream


def utf8(cuts, text):
    """The utf8_stream layout: count of cut bytes (0-3), the cut bytes, the text."""
    assert len(cuts) <= 3
    return bytes([len(cuts)] + list(cuts)) + text


# Relay knobs: bit 0 upstream (unmasked) role, bit 1 RSV1 allowed, bit 2 UTF-8 checks off,
# bits 3-4 frame limit (none/0/20/200), bits 5-6 message limit (none/0/50/300).
SERVER, CLIENT, RSV1_OK, NO_UTF8 = 0, 1, 2, 4
FRAME_LIMIT_20, MESSAGE_LIMIT_50 = 2 << 3, 2 << 5

SEEDS = {
    "frame_header": {
        "masked-text": frame(0x1, b"Hello", key=KEY),
        "len126": frame(0x2, length=300),
        "len127": frame(0x2, length=0x1_0000_0000),
        "len127-masked": frame(0x2, length=70_000, key=KEY),
        "close": frame(0x8, close(1000, b"bye"), key=KEY),
        "ping-unmasked": frame(0x9, b"p"),
        "rsv1-text": frame(0x1, b"x", rsv=0x40),
        "non-minimal": bytes([0x82, 0x7E, 0x00, 0x05]),
    },
    "utf8_stream": {
        "greek": utf8([90, 180], "κόσμε".encode()),
        "mixed": utf8([17, 128, 200], "a é € 😀 中文 Ελληνικά".encode()),
        "overlong": utf8([], b"ab\xc0\xaf"),
        "surrogate": utf8([128], b"ab\xed\xa0\x80cd"),
        "beyond-max": utf8([40], "κόσμε".encode() + b"\xf4\x90\x80\x80"),
        "truncated": utf8([255], b"ok\xf0\x9f\x98"),
    },
    "relay": {
        # A client's fragmented text message with a ping in between, then a close.
        "client-fragments-ping": relay(
            SERVER,
            [5, 1, 9],
            frame(0x1, "héllo ".encode(), fin=False, key=KEY)
            + frame(0x9, b"ping", key=KEY)
            + frame(0x0, "wörld".encode(), key=KEY)
            + frame(0x8, close(1000, b"done"), key=KEY),
        ),
        # An upstream's 200-byte binary frame (16-bit length) and a close with a reason.
        "upstream-binary-close": relay(
            CLIENT, [64], frame(0x2, bytes(range(200))) + frame(0x8, close(1001, b"away"))
        ),
        # Text whose second fragment breaks UTF-8 mid-frame.
        "invalid-utf8": relay(
            SERVER,
            [3, 2],
            frame(0x1, "ok ".encode(), fin=False, key=KEY)
            + frame(0x0, b"ni\xc3\x28 and more", key=KEY),
        ),
        # Close with the never-on-the-wire code 1005.
        "bad-close-code": relay(CLIENT, [1], frame(0x8, close(1005))),
        "continuation-first": relay(SERVER, [2], frame(0x0, b"y", key=KEY)),
        # permessage-deflate: RSV1 on the first frame only; the continuation breaks that.
        "deflate-rsv1": relay(
            CLIENT | RSV1_OK | NO_UTF8,
            [4, 0],
            frame(0x1, b"\xff\x00", fin=False, rsv=0x40) + frame(0x0, b"x", rsv=0x40),
        ),
        # Frame limit 20, message limit 50: the third fragment crosses the message limit.
        "limits": relay(
            SERVER | FRAME_LIMIT_20 | MESSAGE_LIMIT_50,
            [7, 30],
            frame(0x2, bytes(20), fin=False, key=KEY)
            + frame(0x0, bytes(20), fin=False, key=KEY)
            + frame(0x0, bytes(20), key=KEY),
        ),
        # A 64-bit length header followed by only part of its payload.
        "len127-partial": relay(CLIENT, [255, 3], frame(0x2, length=70_000) + bytes(300)),
    },
}


V2_SIGNATURE = b"\r\n\r\n\0\r\nQUIT\n"


def v2(command, family, addresses, tlvs=b""):
    """A PROXY v2 header: version 2 and `command` (0 LOCAL, 1 PROXY), `family` byte."""
    body = addresses + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack(">H", len(body)) + body


IPV4 = bytes([192, 0, 2, 7, 198, 51, 100, 1]) + struct.pack(">HH", 51234, 443)
IPV6 = bytes(range(16)) + bytes(range(16, 32)) + struct.pack(">HH", 40000, 443)
NEXT = b"GET / HTTP/1.1\r\n"

SEEDS["proxy_header"] = {
    "v1-tcp4": b"PROXY TCP4 192.0.2.7 198.51.100.1 51234 443\r\n" + NEXT,
    "v1-tcp6": b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n\x16\x03\x01",
    "v1-unknown": b"PROXY UNKNOWN\r\n" + NEXT,
    "v1-unknown-addresses": b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
    "v1-longest": b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
    b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
    "v1-bad-port": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
    # Found by the target: the parser lets UNKNOWN end in a bare LF, the framing must not.
    "v1-unknown-bare-lf": b"PROXY UNKNOWN f2f fffff:A\0\0\x1c 1 PROXY \nf::1 fOXY \n2 1 2\r\n",
    "v2-ipv4": v2(1, 0x11, IPV4) + NEXT,
    "v2-ipv6": v2(1, 0x21, IPV6) + b"\x16\x03\x01",
    "v2-local": v2(0, 0x00, b"") + NEXT,
    "v2-unix": v2(1, 0x31, bytes(216)),
    "v2-tlvs": v2(1, 0x11, IPV4, b"\x04\x00\x01\x00" + b"\x05\x00\x04abcd"),
    "v2-short-addresses": v2(1, 0x21, IPV4),
    "v2-too-long": V2_SIGNATURE + b"\x21\x11\xff\xff",
}


def main():
    for target, seeds in SEEDS.items():
        directory = os.path.join(HERE, "corpus", target)
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.startswith("seed-"):
                os.remove(os.path.join(directory, name))
        for name, data in seeds.items():
            with open(os.path.join(directory, "seed-" + name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
