"""Drive Sluice with the official OpenAI Python SDK, the way agents do.

Usage: openai_client.py BASE_URL API_KEY MODEL
Prints one JSON object with what the SDK saw; the Rust test checks it.
"""
import json
import sys

import openai

base_url, api_key, model = sys.argv[1:4]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
out = {}

reply = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "hello sdk"}]
)
out["chat"] = reply.choices[0].message.content
out["chat_usage"] = reply.usage.total_tokens

chunks = list(
    client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
)
out["stream_text"] = "".join(
    c.choices[0].delta.content or "" for c in chunks if c.choices
)
out["stream_usage"] = chunks[-1].usage.total_tokens if chunks[-1].usage else None

tool_reply = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "weather?"}],
    tools=[
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ],
)
out["tool"] = tool_reply.choices[0].message.tool_calls[0].function.name

emb = client.embeddings.create(model=model, input=["a", "b"])
out["embeddings"] = len(emb.data)

out["models"] = [m.id for m in client.models.list()]

try:
    client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    out["not_found"] = None
except openai.NotFoundError as e:
    out["not_found"] = e.body.get("code") if isinstance(e.body, dict) else str(e.body)

try:
    openai.OpenAI(base_url=base_url, api_key="sk-wrong-000000000000", max_retries=0).models.list()
    out["bad_key"] = None
except openai.AuthenticationError as e:
    out["bad_key"] = e.status_code

print(json.dumps(out))
