"""End-to-end onboarding with the client generated from openapi/openapi.json.

Usage:
  onboard.py invite BASE_URL ROOT_ACCESS_TOKEN EMAIL
  onboard.py accept BASE_URL INVITE_TOKEN
Each step prints one JSON object; the Rust test reads the mail in between.
"""
import json
import sys

from sluice_client import AuthenticatedClient, Client
from sluice_client.api.auth import login
from sluice_client.api.invites import accept_invite, create_invite
from sluice_client.api.relay import create_chat_completion, list_models
from sluice_client.api.tokens import create_token
from sluice_client.api.users import get_me
from sluice_client.models import (
    AcceptInvite,
    CreateChatCompletionBody,
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
    chat = create_chat_completion.sync_detailed(
        client=relay,
        body=CreateChatCompletionBody.from_dict(
            {"model": "llama", "messages": [{"role": "user", "content": "hello from a generated client"}]}
        ),
    )
    reply = json.loads(chat.content)
    print(
        json.dumps(
            {
                "username": me.username,
                "role": str(me.role.value),
                "models": [m.id for m in models.data],
                "chat_status": int(chat.status_code),
                "reply": reply["choices"][0]["message"]["content"],
            }
        )
    )
