#!/usr/bin/env python3
"""RSS of agentd with N idle keep-alive connections, then N open SSE streams (issue 10.1).

usage: python3 examples/loadtest/connmem.py target/release/agentd 2000 [ENV=VALUE ...]

Starts the server on a new SQLite file with a mock OpenAI-compatible model that sends one token
and then holds each stream; prints the server's RSS in MiB at rest, with the idle connections,
after closing them, with the streams, and after closing those. Standard library only.
"""
import asyncio, json, os, socket, subprocess, sys, tempfile, time, urllib.request

BIN, N = sys.argv[1], int(sys.argv[2])
EXTRA = dict(a.split("=", 1) for a in sys.argv[3:])

def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

HOLD = asyncio.Event()
async def mock(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for l in head.split(b"\r\n"):
            if l.lower().startswith(b"content-length:"):
                length = int(l.split(b":")[1])
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        def chunk(d):
            b = ("data: " + json.dumps(d) + "\n\n").encode()
            return b"%x\r\n%s\r\n" % (len(b), b)
        writer.write(chunk({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}, "finish_reason": None}]}))
        await writer.drain()
        await HOLD.wait()
    except Exception:
        pass
    finally:
        writer.close()

async def main():
    mport, port = free_port(), free_port()
    msrv = await asyncio.start_server(mock, "127.0.0.1", mport, backlog=4096)
    d = tempfile.mkdtemp()
    env = dict(PATH=os.environ["PATH"], DATABASE_URL=f"sqlite://{d}/a.db?mode=rwc", HOST="127.0.0.1",
               PORT=str(port), ADMIN_TOKEN="a" * 48, JWT_SECRET="b" * 64, LLM_PROVIDER="openai",
               OPENAI_API_KEY="sk-x", OPENAI_BASE_URL=f"http://127.0.0.1:{mport}/v1", BOOTSTRAP_DEMO="false",
               RUST_LOG="warn", OPENAI_TIMEOUT_SECONDS="600", REQUEST_TIMEOUT_SECONDS="600",
               AGENT_TURN_TIMEOUT_SECONDS="600")
    env.update(EXTRA)
    p = subprocess.Popen([BIN], env=env, stdout=subprocess.DEVNULL, stderr=open(f"{d}/log", "w"))
    try:
        await measure(p, port)
    finally:
        p.kill()
        p.wait()


async def measure(p, port):
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try: urllib.request.urlopen(base + "/health"); break
        except Exception: time.sleep(0.1)
    def post(path, body, tok):
        r = urllib.request.Request(base + path, json.dumps(body).encode(), {"content-type": "application/json", "authorization": "Bearer " + tok})
        return json.load(urllib.request.urlopen(r))
    post("/api/v1/admin/orgs", {"id": "m", "name": "M", "tier": "custom", "rate_limit": {"requests": 1000000, "window_seconds": 1}}, "a" * 48)
    key = post("/api/v1/admin/orgs/m/keys", {"name": "k"}, "a" * 48)["api_key"]
    await asyncio.sleep(1)
    out = {"start": rss(p.pid)}
    conns = []
    for i in range(N):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"); await w.drain()
        await r.readuntil(b"\r\n\r\n")
        conns.append((r, w))
    await asyncio.sleep(2)
    out["idle"] = rss(p.pid)
    for r, w in conns: w.close()
    conns.clear()
    await asyncio.sleep(3)
    out["idle_closed"] = rss(p.pid)
    import uuid
    async def stream(i):
        body = json.dumps({"message": "hi", "org_id": "m", "session_id": str(uuid.uuid4())}).encode()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"POST /api/v1/chat/stream HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer %s\r\ncontent-length: %d\r\n\r\n%s" % (key.encode(), len(body), body))
        await w.drain()
        buf = b""
        while b"Hello" not in buf:
            c = await r.read(4096)
            if not c: raise RuntimeError("closed: " + buf.decode(errors="replace")[:300])
            buf += c
        return (r, w)
    for i in range(0, N, 100):
        conns += await asyncio.gather(*(stream(j) for j in range(i, min(N, i + 100))))
    await asyncio.sleep(2)
    out["streams"] = rss(p.pid)
    HOLD.set()
    for r, w in conns: w.close()
    await asyncio.sleep(5)
    out["streams_closed"] = rss(p.pid)
    print(json.dumps({k: round(v, 1) for k, v in out.items()}))
asyncio.run(main())
