#!/usr/bin/python3
"""A ServerMind agent written from docs/protocol.md alone (wire version 1, document 1.2).

It plays an outside implementer: everything here follows the document, section numbers in the
comments. Debian's python3 with python3-cryptography, python3-msgpack and python3-lz4; the rest
is the standard library.

    agent.py vectors PROTOCOL_MD
        encodes the frames of sections 10 and 11 (and the command of 9.4) and compares them
        byte for byte with the hex printed in the document.
    agent.py run --server https://127.0.0.1:PORT --fingerprint HEX --token smt_... [--token2 smt_...]
        enrolls, opens a session and talks to a real server over HTTP/1.1 and WebSocket.

Both print one JSON object per line and step; `run` reports what the server answered and what
was sent, the caller judges. Exit status: 0 when every step ran (whatever the server answered),
2 when a step could not run (the line says why).
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import ssl
import struct
import sys
import time
import urllib.parse

import lz4.block
import msgpack
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MAGIC = b"SMF1"
VERSION = 1
KIND_METRICS, KIND_LOGS, KIND_INVENTORY, KIND_SECURITY, KIND_HEARTBEAT, KIND_HELLO = 1, 2, 3, 4, 5, 6
FLAG_LZ4 = 0x0001
FLAG_SEALED = 0x0002
HEADER = struct.Struct("<4sBBHQQQqqIIII")  # 3.1: 64 bytes, little-endian
assert HEADER.size == 64
FRAMES_TYPE = "application/vnd.servermind.frames"


def out(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


# ---------------------------------------------------------------------------------------------
# Bodies (section 4)

def pack(value):
    return msgpack.packb(value, use_bin_type=True)


def f64s(values):
    return struct.pack("<%dd" % len(values), *values)


def metrics_body(names, timestamps, values):
    """4.1: `v` first as bin 32 (values start at byte 8), then `t` and `n`.
    values[s][t] is series s at timestamp t; written series-major."""
    flat = [v for series in values for v in series]
    assert len(flat) == len(names) * len(timestamps)
    v = f64s(flat)
    body = b"\x83" + pack("v") + b"\xc6" + struct.pack(">I", len(v)) + v
    body += pack("t") + pack(f64s(timestamps))
    body += pack("n") + pack("\n".join(names))
    return body, len(flat)


def logs_body(lines):
    """4.2: lines are (t ms, severity 0-7, source, message)."""
    sources = []
    for _, _, src, _ in lines:
        if src not in sources:
            sources.append(src)
    body = {
        "t": f64s([t for t, _, _, _ in lines]),
        "s": bytes(sev for _, sev, _, _ in lines),
        "src": sources,
        "si": struct.pack("<%dH" % len(lines), *[sources.index(src) for _, _, src, _ in lines]),
        "m": [m for _, _, _, m in lines],
    }
    return pack(body), len(lines)


def hello_body(nonce, version):
    return pack({"nonce": nonce, "version": version})


# ---------------------------------------------------------------------------------------------
# Frames (section 3)

class Frame:
    """One frame's fields; `encode` stamps, compresses and authenticates it (3.1, 3.3, 3.5)."""

    def __init__(self, kind, agent_id, batch, raw_body, items=1, created_ms=None, compress=False):
        self.kind, self.agent_id, self.batch = kind, agent_id, batch
        self.raw_body, self.items, self.compress = raw_body, items, compress
        self.created_ms = created_ms if created_ms is not None else now_ms()
        self.content = None  # what the body says, for the report (set by the caller)

    def wire_body(self):
        if not self.compress:
            return self.raw_body, 0
        # 3.3: one LZ4 block, no frame format; the raw length goes into the header
        return lz4.block.compress(self.raw_body, store_size=False), FLAG_LZ4

    def encode(self, seq, sent_ms, key=None, session=None):
        """key: an Ed25519PrivateKey (signed) or None with session=(id, 32-byte key) (sealed)."""
        body, flags = self.wire_body()
        session_id = 0
        if session is not None:
            flags |= FLAG_SEALED
            session_id = session[0]
        header = HEADER.pack(MAGIC, VERSION, self.kind, flags, self.agent_id, seq, self.batch,
                             self.created_ms, sent_ms, len(body), len(self.raw_body), self.items,
                             session_id)
        signed = header + body
        if session is not None:
            trailer = hmac.new(session[1], signed, hashlib.sha256).digest() + bytes(32)
        else:
            trailer = key.sign(signed)
        return signed + trailer


def now_ms():
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------------------------
# Test vectors (sections 9.4, 10 and 11)

def doc_vectors(text):
    """The hex blocks after `<!-- vector: NAME -->` (and `<!-- command-signing-input -->`);
    an annotated line keeps what comes before its first run of two spaces."""
    found = {}
    for m in re.finditer(r"<!-- (?:vector: )?([\w.-]+) -->\n```\n(.*?)```", text, re.S):
        data = bytearray()
        for line in m.group(2).splitlines():
            data += bytes.fromhex(re.split(r"\s{2,}", line.strip())[0])
        found[m.group(1)] = bytes(data)
    return found


def canonical_json(value):
    """9.1: no whitespace, keys sorted by UTF-16 code units, ECMAScript number and string forms
    (only what the vector needs: integers, strings, booleans, arrays, objects)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(canonical_json(k) + ":" + canonical_json(value[k]) for k in keys) + "}"
    raise ValueError("not in the canonical subset this client needs: %r" % (value,))


def lz4_equivalence(doc_frame, our_frame, pub):
    def expand(frame):
        body_len, raw_len = struct.unpack_from("<II", frame, 48)
        return frame[:48], frame[52:64], lz4.block.decompress(frame[64:64 + body_len],
                                                              uncompressed_size=raw_len)
    doc_head, doc_rest, doc_raw = expand(doc_frame)
    our_head, our_rest, our_raw = expand(our_frame)
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(doc_frame[-64:], doc_frame[:-64])
        verifies = True
    except Exception:  # noqa: BLE001 - InvalidSignature: reported as false
        verifies = False
    return {"sameHeaderApartFromBodyLength": doc_head == our_head and doc_rest == our_rest,
            "sameRawBody": doc_raw == our_raw, "docSignatureVerifies": verifies}


def run_vectors(path):
    text = open(path, encoding="utf-8").read()
    doc = doc_vectors(text)
    key = Ed25519PrivateKey.from_private_bytes(bytes([1]) * 32)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    created, sent = 1795000000000, 1795000000123
    out({"step": "vector-key", "publicKeyHex": pub.hex(),
         "publicKeyBase64": base64.b64encode(pub).decode()})

    def frame(kind, batch, body, items=1, compress=False):
        return Frame(kind, 42, batch, body, items, created, compress)

    hb = frame(KIND_HEARTBEAT, 3, pack({"uptime": 3600}))
    m22, m22_items = metrics_body(["cpu.util", "mem.used"], [1795000000000, 1795000010000],
                                  [[12.5, 13], [1024, 2048]])
    logs, logs_items = logs_body([(1795000000000, 6, "sshd.service", "Accepted publickey for deploy"),
                                  (1795000001500, 3, "kernel", "Out of memory: Killed process 4242")])
    inventory = pack({"os": "debian 12", "kernel": "6.1.0-18-amd64",
                      "packages": [{"name": "openssl", "version": "3.0.11-1"}],
                      "ports": [{"proto": "tcp", "port": 22}]})
    # 4.4: `ts` is "number"; the vector writes 1795000000000 as a float64 (cb), so do we
    security = pack({"e": [{"ts": 1795000000000.0, "type": "fim.modify", "severity": 7,
                            "path": "/etc/passwd", "data": {"size": 1856}}]})
    m44, m44_items = metrics_body(["cpu.util", "mem.used_pct", "disk.used_pct./", "net.rx_bytes.eth0"],
                                  [1795000000000 + i * 10000 for i in range(4)],
                                  [[12, 13, 12, 14], [40, 40, 41, 41], [63, 63, 63, 63],
                                   [1000, 1200, 900, 1100]])
    mine = {
        "heartbeat.bin": frame(KIND_HEARTBEAT, 3, hb.raw_body).encode(7, sent, key=key),
        "metrics-2x2.bin": frame(KIND_METRICS, 4, m22, m22_items).encode(8, sent, key=key),
        "heartbeat-sealed.bin": hb.encode(9, sent, session=(0x01020304, bytes([2]) * 32)),
        "logs.bin": frame(KIND_LOGS, 5, logs, logs_items).encode(10, sent, key=key),
        "inventory.bin": frame(KIND_INVENTORY, 6, inventory).encode(11, sent, key=key),
        "security.bin": frame(KIND_SECURITY, 7, security).encode(12, sent, key=key),
        "hello.bin": frame(KIND_HELLO, 0, hello_body("", "0.1.0")).encode(13, sent, key=key),
        "metrics-lz4.bin": frame(KIND_METRICS, 8, m44, m44_items, compress=True).encode(14, sent, key=key),
    }
    for name, data in mine.items():
        expected = doc.get(name)
        line = {"step": "vector", "name": name, "bytes": len(data), "inDoc": expected is not None,
                "identical": data == expected}
        if expected is not None and data != expected:
            line["firstDifference"] = next((i for i in range(min(len(data), len(expected)))
                                            if data[i] != expected[i]), min(len(data), len(expected)))
            line["docBytes"] = len(expected)
            line["ours"] = data.hex()
        if expected is not None and name == "metrics-lz4.bin":
            # LZ4 output is not unique (another compressor, other bytes): besides the bytes, say
            # whether the doc's frame is ours once both blocks are expanded, and is validly signed
            line.update(lz4_equivalence(expected, data, pub))
        out(line)

    # 9.4: the command's signing input and signature (Ed25519 signatures are deterministic)
    command = {"requestedBy": "user:7 Zoë Ñúñez", "v": 1, "id": "0b0e9a52-7d7e-4c1a-9f43-2b6f0e1d2a3b",
               "agentId": 42, "action": "cis.remediate",
               "args": {"dryRun": True, "controls": ["smx.ssh.root-login"]}, "issuedMs": 1795000000000}
    signing_input = b"servermind-command-v1\n" + canonical_json(command).encode("utf-8")
    command_key = Ed25519PrivateKey.from_private_bytes(bytes([3]) * 32)
    command_pub = command_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                       serialization.PublicFormat.Raw)
    doc_sig = re.search(r"its `sig` is `([A-Za-z0-9+/=]+)`", text)
    out({"step": "vector", "name": "command-signing-input", "bytes": len(signing_input),
         "inDoc": "command-signing-input" in doc,
         "identical": doc.get("command-signing-input") == signing_input})
    out({"step": "vector", "name": "command-signature", "inDoc": doc_sig is not None,
         "identical": doc_sig is not None
         and base64.b64encode(command_key.sign(signing_input)).decode() == doc_sig.group(1),
         "commandKeyBase64": base64.b64encode(command_pub).decode()})


# ---------------------------------------------------------------------------------------------
# Connection (section 1): TLS 1.3 only, the leaf certificate pinned by SHA-256 of its DER

class PinError(Exception):
    pass


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    # trust comes from the pin, not from a CA: whatever CA signed it, only the pin counts
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def check_pin(sock, fingerprint):
    der = sock.getpeercert(binary_form=True)
    got = hashlib.sha256(der).hexdigest()
    if got != fingerprint.lower():
        sock.close()
        raise PinError("server certificate SHA-256 %s is not the pinned %s" % (got, fingerprint))
    return sock.version()


class Server:
    def __init__(self, url, fingerprint):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 443
        self.fingerprint = fingerprint
        self.ctx = tls_context()
        self.conn = None

    def connect(self):
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)
        conn.connect()
        tls = check_pin(conn.sock, self.fingerprint)  # before a single byte of request
        self.conn, self.tls = conn, tls

    def request(self, method, path, body, content_type):
        if self.conn is None:
            self.connect()
        headers = {"content-type": content_type, "x-servermind-transport": "h1"}
        try:
            self.conn.request(method, path, body=body, headers=headers)
            res = self.conn.getresponse()
        except (http.client.HTTPException, ConnectionError, ssl.SSLError):
            # the server may close a connection after an answer (5, 5.1): reconnect once
            self.conn.close()
            self.connect()
            self.conn.request(method, path, body=body, headers=headers)
            res = self.conn.getresponse()
        raw = res.read()
        if res.getheader("connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = {"unparsed": raw.decode("utf-8", "replace")}
        return res.status, answer, {k.lower(): v for k, v in res.getheaders()}


# ---------------------------------------------------------------------------------------------
# WebSocket (section 8), a minimal RFC 6455 client

class WebSocket:
    def __init__(self, server):
        raw = socket.create_connection((server.host, server.port), timeout=30)
        self.sock = server.ctx.wrap_socket(raw, server_hostname=server.host)
        check_pin(self.sock, server.fingerprint)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET /api/v1/stream HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           % (server.host, server.port, key)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                               .encode()).digest()).decode()
        if self.status != 101 or headers.get("sec-websocket-accept") != accept:
            raise RuntimeError("WebSocket upgrade refused: %s" % lines[0])

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        self.buf += chunk

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def receive(self):
        """The next data message as ("text", str) or ("binary", bytes), or ("close", code, reason).
        Pings are answered; fragments are joined."""
        message, message_op = b"", None
        while True:
            b0, b1 = self._take(2)
            opcode, fin, n = b0 & 0x0F, b0 & 0x80, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._take(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._take(8))[0]
            mask = self._take(4) if b1 & 0x80 else None
            payload = self._take(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:
                self.send(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode == 0x8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                return ("close", code, payload[2:].decode("utf-8", "replace"))
            if opcode != 0x0:
                message_op = opcode
            message += payload
            if fin:
                if message_op == 0x1:
                    return ("text", message.decode("utf-8"))
                return ("binary", message)

    def close(self):
        try:
            self.send(0x8, struct.pack(">H", 1000))
        finally:
            self.sock.close()


# ---------------------------------------------------------------------------------------------
# The session with a real server

class Agent:
    def __init__(self, server):
        self.server = server
        self.key = Ed25519PrivateKey.generate()
        self.agent_id = None
        self.session = None
        # 3.4: sequence numbers and batch ids both start at the current time in µs (below 2^53)
        start = int(time.time() * 1_000_000)
        self.next_seq = start
        self.next_batch = start

    def public_key_b64(self):
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw,
                                                 serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def seq(self):
        self.next_seq += 1
        return self.next_seq

    def batch(self):
        self.next_batch += 1
        return self.next_batch

    def frame(self, kind, raw_body, items=1, compress=False, batch=None, created_ms=None):
        if batch is None:
            batch = 0 if kind in (KIND_HEARTBEAT, KIND_HELLO) else self.batch()
        return Frame(kind, self.agent_id, batch, raw_body, items, created_ms, compress)

    def metrics(self, names, ts, values, items=None, compress=False):
        body, count = metrics_body(names, ts, values)
        frame = self.frame(KIND_METRICS, body, count if items is None else items, compress=compress)
        return with_content(frame, {"series": names, "t": ts, "values": values})

    def stamp(self, frame, sealed, seq=None):
        """Encode for sending: a new sequence number and sent-at every time (3.4)."""
        seq = self.seq() if seq is None else seq
        if sealed:
            data = frame.encode(seq, now_ms(), session=(self.session["id"], self.session["key"]))
        else:
            data = frame.encode(seq, now_ms(), key=self.key)
        desc = {"kind": frame.kind, "batch": frame.batch, "seq": seq, "sealed": sealed,
                "lz4": frame.compress, "items": frame.items}
        if frame.content is not None:
            desc["content"] = frame.content
        return data, desc

    def ingest(self, step, parts, **extra):
        """POST /api/v1/ingest with the frames of `parts`: (bytes, description) pairs."""
        body = b"".join(data for data, _ in parts)
        try:
            status, answer, headers = self.server.request("POST", "/api/v1/ingest", body, FRAMES_TYPE)
        except (OSError, http.client.HTTPException) as err:
            # no answer at all (the server closed the connection): reported, the caller judges
            self.server.conn = None
            out({"step": step, "status": None, "answer": None, "transportError": "%s: %s" % (type(err).__name__, err),
                 "frames": [d for _, d in parts]})
            return None, None
        line = {"step": step, "status": status, "answer": answer, "frames": [d for _, d in parts]}
        if "retry-after" in headers:
            line["retryAfter"] = headers["retry-after"]
        line.update(extra)
        out(line)
        return status, answer


def with_content(frame, content):
    frame.content = content
    return frame


def metrics_series(base_ms, agent_tag):
    """Three series at four timestamps 10 s apart: names and values the caller checks later."""
    names = ["py.cpu.util", "py.mem.used_bytes", "py.load.1m." + agent_tag]
    ts = [base_ms + i * 10_000 for i in range(4)]
    values = [[12.5 + i for i in range(4)], [1048576.0 * (i + 1) for i in range(4)],
              [0.25 * (i + 1) for i in range(4)]]
    return names, ts, values


def run(args):
    server = Server(args.server, args.fingerprint)
    agent = Agent(server)

    # 1: a server whose certificate does not match the pin is refused before anything is sent
    wrong = Server(args.server, "00" * 32)
    try:
        wrong.connect()
        out({"step": "pin-refused", "refused": False})
    except PinError as err:
        out({"step": "pin-refused", "refused": True, "message": str(err)})

    # TLS 1.3 only (1): a TLS 1.2 handshake is refused with a protocol_version alert
    old_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old_tls.check_hostname, old_tls.verify_mode = False, ssl.CERT_NONE
    old_tls.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with socket.create_connection((server.host, server.port), timeout=10) as raw:
            with old_tls.wrap_socket(raw) as tls:
                out({"step": "tls12-refused", "refused": False, "version": tls.version()})
    except ssl.SSLError as err:
        out({"step": "tls12-refused", "refused": True, "message": str(err)})

    # a plain GET to the stream endpoint (1: 426); TCP answers carry Alt-Svc
    status, answer, headers = server.request("GET", "/api/v1/stream", None, "application/json")
    out({"step": "stream-plain-get", "status": status, "answer": answer, "altSvc": headers.get("alt-svc"),
         "port": server.port})

    # 2: enrollment; keys the doc says are refused first (2: base64url, small order)
    def enroll(token, public_key, hostname, **fields):
        body = dict(token=token, publicKey=public_key, hostname=hostname, **fields)
        status, answer, _ = server.request("POST", "/api/v1/enroll", json.dumps(body).encode(), "application/json")
        return status, answer

    def fresh_key():
        return base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()

    if args.token2:
        pub = base64.b64decode(agent.public_key_b64())
        for what, key in [("base64url without padding", base64.urlsafe_b64encode(pub).decode().rstrip("=")),
                          ("a point of small order (the identity)", base64.b64encode(b"\x01" + bytes(31)).decode())]:
            status, answer = enroll(args.token2, key, args.hostname)
            out({"step": "enroll-bad-key", "key": what, "status": status, "answer": answer})
    status, answer = enroll(args.token, agent.public_key_b64(), args.hostname,
                            os="debian 12", arch="x64", version="py-0.1.0")
    out({"step": "enroll", "status": status, "answer": answer, "tls": server.tls,
         "publicKey": agent.public_key_b64()})
    if status != 200:
        return 2
    agent.agent_id = answer["agentId"]

    # the same token again, with another key: it was used once (2)
    status, answer = enroll(args.token, fresh_key(), args.hostname + "-again")
    out({"step": "enroll-token-reused", "status": status, "answer": answer})
    if args.token2:
        # the key already enrolled, with a fresh token (2: 409 key_in_use)
        status, answer = enroll(args.token2, agent.public_key_b64(), args.hostname)
        out({"step": "enroll-key-in-use", "status": status, "answer": answer})
        # the same token after 400s and a 409, with a new key: was it used up by them?
        status, answer = enroll(args.token2, fresh_key(), args.hostname + "-second")
        out({"step": "enroll-token-after-refusals", "status": status, "answer": answer})

    # 3: a session (3.5, 6.2)
    hello = agent.frame(KIND_HELLO, hello_body("", "py-0.1.0"))
    data, desc = agent.stamp(hello, sealed=False)
    status, answer, headers = server.request("POST", "/api/v1/session", data, FRAMES_TYPE)
    out({"step": "session", "status": status, "answer": answer, "frames": [desc],
         "cacheControl": headers.get("cache-control")})
    if status != 200:
        return 2
    agent.session = {"id": answer["session"]["id"], "key": base64.b64decode(answer["session"]["key"]),
                     "expiresMs": answer["session"]["expiresMs"]}

    base = now_ms() - 60_000  # whole ms, a minute ago

    # 4: metrics, signed and sealed, several series and timestamps
    signed_metrics = agent.metrics(*metrics_series(base, "signed"))
    agent.ingest("metrics-signed", [agent.stamp(signed_metrics, sealed=False)])

    agent.ingest("metrics-sealed", [agent.stamp(agent.metrics(*metrics_series(base + 1_000, "sealed")),
                                                sealed=True)])

    # 5: several frames in one request: LZ4 metrics (sealed), logs (sealed), heartbeat (signed)
    lz_names = ["py.lz4.series.%02d" % i for i in range(6)]
    lz_ts = [base + 2_000 + i * 5_000 for i in range(8)]
    lz_values = [[float(s * 100 + i % 3) for i in range(len(lz_ts))] for s in range(len(lz_names))]
    lz_frame = agent.metrics(lz_names, lz_ts, lz_values, compress=True)
    log_lines = [(base + 500, 6, "py-agent.service", "python agent started, pid %d" % os.getpid()),
                 (base + 1500, 3, "/var/log/py-agent.log", "disk almost full: 97% on /srv"),
                 (base + 1000, 4, "py-agent.service", "unicode survives: Zoë Ñúñez ✓")]
    body, items = logs_body(log_lines)
    logs_frame = with_content(agent.frame(KIND_LOGS, body, items), [
        {"t": t, "severity": sev, "source": src, "message": m} for t, sev, src, m in log_lines])
    status_map = {"uptime": 42, "version": "py-0.1.0", "transport": "h1", "spool": 0}
    heartbeat = with_content(agent.frame(KIND_HEARTBEAT, pack(status_map)), status_map)
    inventory = {"os": "debian 12", "kernel": "6.1.0-py", "hostname": args.hostname,
                 "packages": [{"name": "python3", "version": "3.11.2-1"}]}
    event = {"ts": float(base + 2_500), "type": "fim.modify", "severity": 6, "path": "/etc/py-agent.conf",
             "data": {"size": 123}}
    lz_wire, _ = lz_frame.wire_body()
    agent.ingest("several", [agent.stamp(lz_frame, sealed=True), agent.stamp(logs_frame, sealed=True),
                             agent.stamp(heartbeat, sealed=False),
                             agent.stamp(with_content(agent.frame(KIND_INVENTORY, pack(inventory)), inventory),
                                         sealed=True),
                             agent.stamp(with_content(agent.frame(KIND_SECURITY, pack({"e": [event]}), 1),
                                                      [event]), sealed=False)],
                 lz4={"raw": len(lz_frame.raw_body), "wire": len(lz_wire)})

    # 6: the batch of step 4 again, restamped: `dup`, nothing stored twice (3.4)
    agent.ingest("duplicate", [agent.stamp(signed_metrics, sealed=True)])

    # 7: bad frames around good ones in one request (3.6, 7); each is checked on its own. Each
    # broken frame says what the doc makes us expect: the code, and whether its sequence number
    # is consumed (3.4: everything that reaches the replay check)
    def good(tag):
        return agent.metrics(["py.mixed." + tag], [base + 3_000], [[7.0]])

    def broken(part, what, code, consumes):
        data, desc = part
        return data, dict(desc, broken=what, expect={"code": code, "consumes": consumes})

    def resigned(frame, mutate, sealed=False):
        """Stamp a frame, change header bytes, then authenticate the changed bytes again."""
        data, desc = agent.stamp(frame, sealed=sealed)
        raw = bytearray(data[:-64])
        mutate(raw)
        if sealed:
            session_id = struct.unpack_from("<I", raw, 60)[0]
            trailer = hmac.new(agent.session["key"], bytes(raw), hashlib.sha256).digest() + bytes(32)
            desc = dict(desc, sessionId=session_id)
        else:
            trailer = agent.key.sign(bytes(raw))
        return bytes(raw) + trailer, desc

    metrics_frame = agent.metrics

    def put(fmt, offset, value):
        return lambda raw: struct.pack_into(fmt, raw, offset, value)

    parts = [agent.stamp(good("first"), sealed=False)]
    data, desc = agent.stamp(good("bad-signature"), sealed=False)
    parts.append(broken((data[:-1] + bytes([data[-1] ^ 0x01]), desc), "signature bit flipped",
                        "bad_signature", False))
    data, desc = agent.stamp(good("bad-tag"), sealed=True)
    parts.append(broken((data[:-40] + bytes([data[-40] ^ 0x01]) + data[-39:], desc),
                        "session tag bit flipped", "bad_signature", False))
    parts.append(broken(agent.stamp(good("replayed"), sealed=False, seq=parts[0][1]["seq"]),
                        "the sequence number of the first frame", "replayed_seq", False))
    # header rules (3.1, 3.6 step 1): the frame is skipped, reading goes on
    parts.append(broken(resigned(good("unknown-kind"), lambda raw: raw.__setitem__(5, 9)),
                        "kind 9", "unknown_kind", False))
    parts.append(broken(resigned(good("flag-bit-2"), put("<H", 6, 0x0004)),
                        "flag bit 2", "bad_flags", False))
    parts.append(broken(resigned(good("sealed-no-session"), put("<I", 60, 0), sealed=True),
                        "flag bit 1 with session id 0", "bad_flags", False))
    parts.append(broken(resigned(good("signed-with-session"), put("<I", 60, 7)),
                        "signed, session id 7", "bad_flags", False))
    parts.append(broken(resigned(good("many-items"), put("<I", 56, 1_000_001)),
                        "item count 1,000,001", "too_many_items", False))
    parts.append(broken(resigned(good("created-1999"), put("<q", 32, 915148800000)),
                        "created at 1999-01-01", "bad_timestamp", False))
    parts.append(broken(resigned(good("raw-length"), lambda raw: struct.pack_into(
        "<I", raw, 52, struct.unpack_from("<I", raw, 48)[0] + 1)), "raw length = body length + 1 without LZ4",
        "bad_body", False))
    ratio = agent.frame(KIND_METRICS, b"\x00" * 10, 1)
    parts.append(broken(resigned(ratio, lambda raw: (struct.pack_into("<H", raw, 6, FLAG_LZ4),
                                                      struct.pack_into("<I", raw, 52, 255 * 10 + 17))),
                        "LZ4 raw length 255 x 10 + 17", "bad_lz4", False))
    parts.append(broken(resigned(good("unknown-session"), put("<I", 60, (agent.session["id"] ^ 0x5A5A5A5A) or 1),
                                 sealed=True), "a session id no session has", "unknown_session", False))
    stranger = Frame(KIND_METRICS, agent.agent_id + 1000, agent.batch(),
                     metrics_body(["py.stranger"], [base], [[1.0]])[0], 1)
    seq = agent.seq()
    parts.append(broken((stranger.encode(seq, now_ms(), key=agent.key),
                         {"kind": KIND_METRICS, "batch": stranger.batch, "seq": seq, "sealed": False,
                          "lz4": False, "items": 1, "agentId": stranger.agent_id}),
                        "an agent id nobody has", "unknown_agent", False))
    huge = agent.frame(KIND_METRICS, bytes(131_600), 1)
    parts.append(broken(resigned(huge, lambda raw: (struct.pack_into("<H", raw, 6, FLAG_LZ4),
                                                     struct.pack_into("<I", raw, 52, 32 * 1048576 + 1))),
                        "LZ4 raw length 32 MiB + 1", "frame_too_large", False))
    # body rules (3.6 step 6): after the replay check, so the sequence number is consumed
    parts.append(broken(resigned(agent.frame(KIND_METRICS, b"\x00" * 300, 1),
                                 lambda raw: (struct.pack_into("<H", raw, 6, FLAG_LZ4),
                                              struct.pack_into("<I", raw, 52, 600))),
                        "LZ4 flag on a block that is not LZ4", "bad_lz4", True))
    parts.append(broken(agent.stamp(agent.frame(KIND_METRICS, pack({"t": 1}) + b"\x00", 1), sealed=False),
                        "a byte after the msgpack map", "bad_msgpack", True))
    parts.append(broken(agent.stamp(agent.frame(KIND_LOGS, pack([1, 2, 3]), 1), sealed=False),
                        "body is an array, not a map", "bad_body", True))
    parts.append(broken(agent.stamp(metrics_frame(["py.mixed.count"], [base], [[1.0]], items=2), sealed=False),
                        "item count 2 for 1 value", "bad_body", True))
    parts.append(broken(agent.stamp(metrics_frame(["py.mixed.order"], [base + 10, base], [[1.0, 2.0]]), sealed=True),
                        "timestamps not increasing", "bad_body", True))
    parts.append(broken(agent.stamp(metrics_frame(["py.mixed.span"], [base - 3_600_001, base], [[1.0, 2.0]]),
                                    sealed=True), "span of 1 hour + 1 ms", "bad_body", True))
    parts.append(broken(agent.stamp(metrics_frame(["py.mixed.a", "py.mixed.a"], [base], [[1.0], [2.0]]),
                                    sealed=True), "a series name twice", "bad_body", True))
    parts.append(broken(agent.stamp(metrics_frame(["py.mixed.fraction"], [base + 0.5], [[1.0]]), sealed=False),
                        "timestamp with a fraction", "bad_timestamp", True))
    parts.append(broken(agent.stamp(metrics_frame(["py.mixed.2100"], [4102444800000], [[1.0]]), sealed=True),
                        "timestamp 2100-01-01 (the end is excluded)", "bad_timestamp", True))
    parts.append(broken(agent.stamp(metrics_frame(["py.mixed.nul\x00"], [base], [[1.0]]), sealed=True),
                        "U+0000 in a series name", "bad_name", True))
    body, items = logs_body([(base, 8, "py-agent.service", "severity 8")])
    parts.append(broken(agent.stamp(agent.frame(KIND_LOGS, body, items), sealed=True),
                        "log severity 8", "bad_body", True))
    parts.append(broken(agent.stamp(agent.frame(KIND_HELLO, hello_body("", "py-0.1.0")), sealed=False),
                        "a hello sent to /api/v1/ingest", "bad_body", True))
    parts.append(agent.stamp(good("last"), sealed=True))
    data, desc = agent.stamp(good("truncated"), sealed=False)
    parts.append(broken((data[:-10], desc), "the request ends 10 bytes before the frame's end", "truncated", False))
    agent.ingest("mixed", parts)

    # 8: each broken frame's sequence number again, on a good frame: refused as a replay where
    # the doc says the reject consumed it, acknowledged where it did not
    # (one request per frame, so that each answer is about that number alone)
    for k, (_, desc) in enumerate(parts):
        if "expect" not in desc or desc["expect"]["code"] == "replayed_seq":
            continue
        data, reused = agent.stamp(good("reuse-%d" % k), sealed=True, seq=desc["seq"])
        agent.ingest("seq-reuse", [(data, dict(reused, after=desc["broken"], afterCode=desc["expect"]["code"],
                                               consumed=desc["expect"]["consumes"]))])

    # 9: far below the highest: outside the window of 4096 (3.4)
    agent.ingest("replayed-below-window", [broken(agent.stamp(good("below-window"), sealed=False,
                                                              seq=agent.next_seq - 5000),
                                                  "5000 below the highest", "replayed_seq", False)])

    # 10: what ends the reading of a request: a cut header, bad magic, bad version, a u64 ≥ 2^53
    first = agent.stamp(good("before-cut"), sealed=True)
    cut = agent.stamp(good("cut"), sealed=True)
    agent.ingest("truncated-header", [first, broken((cut[0][:40], cut[1]), "40 bytes of a header", "truncated", False)])
    for step, what, mutate, code in [
            ("bad-magic", "magic SMF2", lambda raw: raw.__setitem__(slice(0, 4), b"SMF2"), "bad_magic"),
            ("bad-version", "version 2", lambda raw: raw.__setitem__(4, 2), "bad_version"),
            ("u64-too-large", "batch id 2^53", put("<Q", 24, 2 ** 53), "bad_body")]:
        first = agent.stamp(good("before-" + step), sealed=True)
        after = agent.stamp(good("after-" + step), sealed=True)
        agent.ingest(step, [first, broken(resigned(good(step), mutate, sealed=True), what, code, False), after])
    agent.ingest("empty", [])

    # a frame whose body on the wire is over 8 MiB (5: 422 frame_too_large), after a good frame;
    # the request itself is under its 16 MiB limit
    over = agent.frame(KIND_LOGS, bytes(8 * 1048576 + 1), 1)
    agent.ingest("frame-over-limit", [agent.stamp(good("before-over-limit"), sealed=True),
                                      broken(agent.stamp(over, sealed=True), "body of 8 MiB + 1 byte",
                                             "frame_too_large", False)])
    # the same first in a request, before anything authenticated: refused from its header alone
    # (5.1), so only the header is sent (the server reads no further)
    data, desc = agent.stamp(over, sealed=True)
    agent.ingest("frame-over-limit-first", [broken((data[:64], desc), "header declaring a body of 8 MiB + 1 byte, first",
                                                   "frame_too_large", False)])

    # 11: a sealed hello never opens a session (3.5); a stale hello does not either (6.2)
    data, desc = agent.stamp(agent.frame(KIND_HELLO, hello_body("", "py-0.1.0")), sealed=True)
    status, answer, _ = server.request("POST", "/api/v1/session", data, FRAMES_TYPE)
    out({"step": "session-sealed-hello", "status": status, "answer": answer, "frames": [desc]})
    stale = agent.frame(KIND_HELLO, hello_body("", "py-0.1.0"), created_ms=now_ms() - 6 * 60_000)
    data, desc = agent.stamp(stale, sealed=False)
    status, answer, _ = server.request("POST", "/api/v1/session", data, FRAMES_TYPE)
    out({"step": "session-stale-hello", "status": status, "answer": answer, "frames": [desc]})

    # 11: WebSocket (8): challenge, hello, welcome, then frames in a binary message
    if not args.no_ws:
        ws = WebSocket(server)
        kind, challenge = ws.receive()
        challenge = json.loads(challenge)
        hello = agent.frame(KIND_HELLO, hello_body(challenge["nonce"], "py-0.1.0"))
        data, desc = agent.stamp(hello, sealed=False)
        ws.send(0x2, data)
        welcome = json.loads(ws.receive()[1])
        out({"step": "ws-welcome", "challenge": challenge, "welcome": dict(welcome, session=dict(
            welcome.get("session", {}), key="<%d bytes>" % len(base64.b64decode(
                welcome.get("session", {}).get("key", ""))))), "frames": [desc]})
        ws_session = welcome["session"]
        saved, agent.session = agent.session, {"id": ws_session["id"],
                                               "key": base64.b64decode(ws_session["key"])}
        ws_status = {"uptime": 43, "version": "py-0.1.0", "transport": "ws"}
        parts = [agent.stamp(agent.metrics(["py.ws.series"], [base + 4_000, base + 14_000], [[3.5, 4.5]]),
                             sealed=True),
                 agent.stamp(with_content(agent.frame(KIND_HEARTBEAT, pack(ws_status)), ws_status),
                             sealed=False)]
        data, desc = agent.stamp(good("ws-bad-signature"), sealed=False)
        parts.append((data[:-1] + bytes([data[-1] ^ 1]), dict(desc, broken="signature bit flipped")))
        ws.send(0x2, b"".join(d for d, _ in parts))
        while True:
            msg = ws.receive()
            if msg[0] != "text" or json.loads(msg[1]).get("type") == "ack":
                break
        out({"step": "ws-frames", "message": json.loads(msg[1]) if msg[0] == "text" else list(msg),
             "frames": [d for _, d in parts]})
        # a hello on an open stream is bad_body (3.2)
        data, desc = agent.stamp(agent.frame(KIND_HELLO, hello_body("", "py-0.1.0")), sealed=True)
        ws.send(0x2, data)
        while True:
            msg = ws.receive()
            if msg[0] != "text" or json.loads(msg[1]).get("type") == "ack":
                break
        out({"step": "ws-hello-again", "message": json.loads(msg[1]) if msg[0] == "text" else list(msg),
             "frames": [desc]})
        ws.close()
        agent.session = saved

        # a hello with the wrong nonce closes the stream with 4401 (8.1)
        ws = WebSocket(server)
        ws.receive()
        data, desc = agent.stamp(agent.frame(KIND_HELLO, hello_body("A" * 32, "py-0.1.0")), sealed=False)
        ws.send(0x2, data)
        messages = []
        while True:
            msg = ws.receive()
            if msg[0] == "close":
                break
            messages.append(json.loads(msg[1]) if msg[0] == "text" else msg[1].hex())
        ws.sock.close()
        out({"step": "ws-wrong-nonce", "messages": messages, "close": msg[1], "reason": msg[2],
             "frames": [desc]})
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("vectors")
    v.add_argument("protocol_md")
    r = sub.add_parser("run")
    r.add_argument("--server", required=True)
    r.add_argument("--fingerprint", required=True)
    r.add_argument("--token", required=True)
    r.add_argument("--token2")
    r.add_argument("--hostname", default="py-agent")
    r.add_argument("--no-ws", action="store_true")
    args = parser.parse_args()
    if args.command == "vectors":
        run_vectors(args.protocol_md)
        return 0
    try:
        return run(args)
    except Exception as err:  # noqa: BLE001 - one line for the caller, then the status
        out({"step": "error", "error": "%s: %s" % (type(err).__name__, err)})
        return 2


if __name__ == "__main__":
    sys.exit(main())
