"""Drive Sluice's /v1/responses with the official OpenAI Python SDK.

Usage: responses_client.py BASE_URL API_KEY MODEL
Prints one JSON object with what the SDK saw; the Rust test checks it.
"""
import json
import sys

import openai

base_url, api_key, model = sys.argv[1:4]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
out = {}

reply = client.responses.create(model=model, instructions="Be brief.", input="hello responses")
out["text"] = reply.output_text
out["status"] = reply.status
out["usage"] = reply.usage.total_tokens

events = list(client.responses.create(model=model, input="stream please", stream=True))
out["events"] = [e.type for e in events]
out["stream_text"] = "".join(e.delta for e in events if e.type == "response.output_text.delta")
out["stream_usage"] = events[-1].response.usage.total_tokens

tools = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    {"type": "web_search"},
]
question = [{"role": "user", "content": [{"type": "input_text", "text": "weather in Paris?"}]}]
streamed = list(client.responses.create(model=model, input=question, tools=tools, stream=True))
call = next(
    e.item for e in streamed if e.type == "response.output_item.done" and e.item.type == "function_call"
)
out["tool"] = call.name
out["tool_stream_end"] = streamed[-1].type
answer = client.responses.create(
    model=model,
    input=question
    + [
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
    ],
    tools=tools,
)
out["after_tool"] = answer.output_text

whole = client.responses.create(model=model, input=question, tools=tools)
out["whole_tool"] = [i.type for i in whole.output]

try:
    client.responses.create(model="nope", input="x")
    out["not_found"] = None
except openai.NotFoundError as e:
    out["not_found"] = e.body.get("code") if isinstance(e.body, dict) else str(e.body)

try:
    client.responses.create(model=model, input="x", previous_response_id="resp_1")
    out["previous"] = None
except openai.BadRequestError as e:
    out["previous"] = e.status_code

print(json.dumps(out))
