//! A whole OpenAI chat reply as a Responses API `response` object.

use serde_json::{json, Value};

use crate::relay::protocol::new_id;
use crate::relay::usage::Usage;

/// The `response` object around `output`; `usage` once it is known.
pub fn envelope(
    id: &str,
    model: &str,
    created_at: i64,
    status: &str,
    output: Vec<Value>,
    usage: Option<Usage>,
) -> Value {
    let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "model": model,
        "output": output,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": null,
        "metadata": {},
        "parallel_tool_calls": true,
        "temperature": null,
        "top_p": null,
        "tool_choice": "auto",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "usage": usage.map(|u| json!({
            "input_tokens": u.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": u.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u.total(),
        })),
    })
}

/// An assistant message item holding `text`.
pub fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({
        "type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

/// A function call item.
pub fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({
        "type": "function_call", "id": id, "call_id": call_id, "name": name,
        "arguments": arguments, "status": status,
    })
}

/// The response's status for an OpenAI finish reason.
pub fn status(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "incomplete",
        _ => "completed",
    }
}

/// The response for an OpenAI `chat.completion`; `model` is the name the client used.
pub fn response(reply: &Value, model: &str, usage: Usage) -> Value {
    let choice = &reply["choices"][0];
    let msg = &choice["message"];
    let mut output = Vec::new();
    if let Some(text) = msg["content"].as_str().filter(|t| !t.is_empty()) {
        output.push(message_item(&new_id("msg"), text, "completed"));
    }
    for call in msg["tool_calls"].as_array().into_iter().flatten() {
        let call_id = call["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map_or_else(|| new_id("call"), String::from);
        output.push(call_item(
            &new_id("fc"),
            &call_id,
            call["function"]["name"].as_str().unwrap_or_default(),
            call["function"]["arguments"].as_str().unwrap_or("{}"),
            "completed",
        ));
    }
    let created = reply["created"]
        .as_i64()
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    envelope(
        &new_id("resp"),
        model,
        created,
        status(choice["finish_reason"].as_str()),
        output,
        Some(usage),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_tool_calls_become_output_items() {
        let reply = json!({"created": 5, "choices": [{"finish_reason": "tool_calls", "message": {
            "content": "Checking.",
            "tool_calls": [{"id": "call_1", "function": {"name": "exec_command", "arguments": "{}"}}]
        }}]});
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 2,
        };
        let r = response(&reply, "m", usage);
        assert_eq!(r["object"], "response");
        assert_eq!(r["status"], "completed");
        assert_eq!(r["output"][0]["content"][0]["text"], "Checking.");
        assert_eq!(r["output"][1]["type"], "function_call");
        assert_eq!(r["output"][1]["call_id"], "call_1");
        assert_eq!(r["usage"]["total_tokens"], 12);
        let cut = json!({"choices": [{"finish_reason": "length", "message": {"content": "Hel"}}]});
        assert_eq!(
            response(&cut, "m", usage)["incomplete_details"]["reason"],
            "max_output_tokens"
        );
    }
}
