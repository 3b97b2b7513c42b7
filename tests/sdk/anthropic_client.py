"""Drive Sluice's /v1/messages with Anthropic's official Python SDK.

Usage: anthropic_client.py BASE_URL API_KEY MODEL
Prints one JSON object with what the SDK saw; the Rust test checks it.
"""
import json
import sys

import anthropic

base_url, api_key, model = sys.argv[1:4]
client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0)
out = {}

msg = client.messages.create(
    model=model, max_tokens=64, messages=[{"role": "user", "content": "hello claude"}]
)
out["text"] = msg.content[0].text
out["stop_reason"] = msg.stop_reason
out["usage"] = [msg.usage.input_tokens, msg.usage.output_tokens]

with client.messages.stream(
    model=model,
    max_tokens=64,
    system="You are terse.",
    messages=[{"role": "user", "content": "stream please"}],
) as stream:
    out["stream_text"] = "".join(stream.text_stream)
    final = stream.get_final_message()
out["stream_stop_reason"] = final.stop_reason
out["stream_usage"] = [final.usage.input_tokens, final.usage.output_tokens]

# A tool round trip: the call streamed, the answer to its result not.
tools = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
messages = [{"role": "user", "content": "weather in Paris?"}]
with client.messages.stream(model=model, max_tokens=64, messages=messages, tools=tools) as stream:
    called = stream.get_final_message()
tool_use = next(b for b in called.content if b.type == "tool_use")
out["tool"] = tool_use.name
out["tool_input"] = tool_use.input
out["tool_stop_reason"] = called.stop_reason
messages += [
    {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in called.content]},
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny, 21 C"}],
    },
]
answer = client.messages.create(model=model, max_tokens=64, messages=messages, tools=tools)
out["after_tool"] = answer.content[0].text
out["after_tool_stop_reason"] = answer.stop_reason

whole_call = client.messages.create(model=model, max_tokens=64, messages=messages[:1], tools=tools)
out["whole_tool"] = [b.type for b in whole_call.content]

out["count_tokens"] = client.messages.count_tokens(
    model=model, messages=[{"role": "user", "content": "count these words please"}]
).input_tokens

try:
    client.messages.create(model="nope", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    out["not_found"] = None
except anthropic.NotFoundError as e:
    out["not_found"] = e.body["error"]["type"]

try:
    anthropic.Anthropic(base_url=base_url, api_key="sk-wrong-000000000000", max_retries=0).messages.create(
        model=model, max_tokens=8, messages=[{"role": "user", "content": "x"}]
    )
    out["bad_key"] = None
except anthropic.AuthenticationError as e:
    out["bad_key"] = [e.status_code, e.body["error"]["type"]]

print(json.dumps(out))
