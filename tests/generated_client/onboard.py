"""End-to-end onboarding with the client generated from openapi/openapi.json.

Usage:
  onboard.py invite BASE_URL ROOT_ACCESS_TOKEN EMAIL
  onboard.py accept BASE_URL INVITE_TOKEN
  onboard.py logs BASE_URL ACCESS_TOKEN
Each step prints one JSON object; the Rust test reads the mail in between.
"""
import json
import sys

from sluice_client import AuthenticatedClient, Client
from sluice_client.api.auth import login
from sluice_client.api.invites import accept_invite, create_invite
from sluice_client.api.logs import list_logs
from sluice_client.api.relay import create_chat_completion, list_models
from sluice_client.api.tokens import create_token
from sluice_client.api.users import get_me
from sluice_client.models import (
    AcceptInvite,
    CreateChatCompletionRequest,
    CreateChatCompletionResponse,
    CreateChatCompletionStreamResponse,
    CreateInvite,
    CreateToken,
    LoginRequest,
    Session,
)

step, base_url = sys.argv[1], sys.argv[2]

if step == "invite":
    root = AuthenticatedClient(base_url=base_url, token=sys.argv[3])
    res = create_invite.sync_detailed(client=root, body=CreateInvite(email=sys.argv[4]))
    print(json.dumps({"status": int(res.status_code)}))
elif step == "accept":
    anon = Client(base_url=base_url)
    session = accept_invite.sync(
        client=anon,
        body=AcceptInvite(token=sys.argv[3], username="carol", password="carol-password-1"),
    )
    assert isinstance(session, Session), session
    again = login.sync(client=anon, body=LoginRequest(username="carol", password="carol-password-1"))
    assert isinstance(again, Session), again
    carol = AuthenticatedClient(base_url=base_url, token=again.access_token)
    me = get_me.sync(client=carol)
    created = create_token.sync(client=carol, body=CreateToken(name="generated"))
    relay = AuthenticatedClient(base_url=base_url, token=created.key)
    models = list_models.sync(client=relay)
    chat = create_chat_completion.sync(
        client=relay,
        body=CreateChatCompletionRequest.from_dict(
            {"model": "llama", "messages": [{"role": "user", "content": "hello from a generated client"}]}
        ),
    )
    assert isinstance(chat, CreateChatCompletionResponse), chat
    # A stream is read from the client's own HTTP connection; each event is a typed chunk.
    streamed = ""
    body = CreateChatCompletionRequest.from_dict(
        {"model": "llama", "stream": True, "messages": [{"role": "user", "content": "stream to a generated client"}]}
    )
    with relay.get_httpx_client().stream("POST", "/v1/chat/completions", json=body.to_dict()) as res:
        assert res.status_code == 200, res.status_code
        for line in res.iter_lines():
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            chunk = CreateChatCompletionStreamResponse.from_dict(json.loads(line[5:]))
            streamed += "".join(c.delta.content or "" for c in chunk.choices)
    print(
        json.dumps(
            {
                "username": me.username,
                "role": str(me.role.value),
                "models": [m.id for m in models.data],
                "reply": chat.choices[0].message.content,
                "streamed": streamed,
                "access_token": again.access_token,
            }
        )
    )
elif step == "logs":
    carol = AuthenticatedClient(base_url=base_url, token=sys.argv[3])
    page = list_logs.sync(client=carol, limit=10)
    print(json.dumps({"models": [row.model for row in page.items], "statuses": [row.status for row in page.items]}))
