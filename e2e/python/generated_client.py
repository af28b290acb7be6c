"""Drives agentd through a client generated from its own /openapi.json (issue 11.10).

usage: python3 generated_client.py PACKAGE_DIR BASE_URL API_KEY ORG

PACKAGE_DIR holds the package `openapi-python-client generate` wrote (agentd_client). The
script does a chat turn, reads a problem, and streams a turn, using only the generated
functions and models; it exits non-zero (with the reason) when any of them misbehaves.
"""
import json
import sys
import uuid

sys.path.insert(0, sys.argv[1])
base_url, api_key, org = sys.argv[2], sys.argv[3], sys.argv[4]

from agentd_client import AuthenticatedClient  # noqa: E402
from agentd_client.api.chat import post_chat, post_chat_stream  # noqa: E402
from agentd_client.models import ChatRequest, ChatResponse, Problem  # noqa: E402

client = AuthenticatedClient(
    base_url=base_url, token=api_key, auth_header_name="X-API-Key", prefix=""
)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


# A chat turn: the typed reply.
session = str(uuid.uuid4())
reply = post_chat.sync(
    client=client,
    body=ChatRequest(message="What services do you offer?", session_id=session, org_id=org),
    idempotency_key="generated-1",
)
check(isinstance(reply, ChatResponse), f"a chat turn answers a ChatResponse, got {reply!r}")
check(reply.response, "the reply has text")
check(str(reply.session_id) == session, "the reply names its session")

# A problem: the typed problem+json.
bad = post_chat.sync_detailed(
    client=client, body=ChatRequest(message="", session_id=session, org_id=org)
)
check(bad.status_code == 422, f"an empty message is 422, got {bad.status_code}")
check(isinstance(bad.parsed, Problem), f"the 422 parses as Problem, got {bad.parsed!r}")
check(bad.parsed.code == "VALIDATION_ERROR", f"its code, got {bad.parsed.code}")

# A streamed turn: the generated call hands the event stream over as text.
streamed = post_chat_stream.sync_detailed(
    client=client, body=ChatRequest(message="Hello", session_id=session, org_id=org)
)
check(streamed.status_code == 200, f"the stream answers 200, got {streamed.status_code}")
events = []
for block in streamed.content.decode().split("\n\n"):
    name = data = None
    for line in block.splitlines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data = json.loads(line[5:].strip())
    if name:
        events.append((name, data))
check(events and events[0][0] == "state", f"the first event is state: {events[:1]}")
check(events[-1][0] == "done" and events[-1][1]["done"] is True, f"the last is done: {events[-1:]}")
print("generated client: chat turn, problem and stream OK")
