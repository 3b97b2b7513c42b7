//! A whole OpenAI chat reply as an Anthropic message.

use serde_json::{json, Value};

use crate::relay::protocol::{arguments_object, new_id};
use crate::relay::usage::Usage;

/// The message for an OpenAI `chat.completion`; `model` is the name the client used.
pub fn message(reply: &Value, model: &str, usage: Usage) -> Value {
    let choice = &reply["choices"][0];
    let msg = &choice["message"];
    let mut content = Vec::new();
    let text = match &msg["content"] {
        Value::String(s) => s.clone(),
        // Some providers answer with a list of parts.
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    };
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    let calls = msg["tool_calls"].as_array().map_or(&[][..], Vec::as_slice);
    for call in calls {
        content.push(json!({
            "type": "tool_use",
            "id": call["id"].as_str().filter(|id| !id.is_empty()).map_or_else(|| new_id("toolu"), String::from),
            "name": call["function"]["name"].as_str().unwrap_or_default(),
            "input": arguments_object(call["function"]["arguments"].as_str()),
        }));
    }
    json!({
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str(), !calls.is_empty()),
        "stop_sequence": null,
        "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens},
    })
}

/// Anthropic's stop reason for an OpenAI finish reason. Some providers finish
/// a tool call with `stop`: the calls decide.
pub fn stop_reason(finish: Option<&str>, called_tools: bool) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        Some("tool_calls") | Some("function_call") => "tool_use",
        _ if called_tools => "tool_use",
        _ => "end_turn",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_call_reply_becomes_a_tool_use_message() {
        let reply = json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]
        }}]});
        let usage = Usage {
            prompt_tokens: 12,
            completion_tokens: 3,
        };
        let m = message(&reply, "claude-x", usage);
        assert_eq!(m["type"], "message");
        assert_eq!(m["model"], "claude-x");
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(
            m["content"],
            json!([{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}])
        );
        assert_eq!(m["usage"], json!({"input_tokens": 12, "output_tokens": 3}));
        let text = json!({"choices": [{"finish_reason": "length", "message": {"content": "Hel"}}]});
        let m = message(&text, "m", usage);
        assert_eq!(m["content"], json!([{"type": "text", "text": "Hel"}]));
        assert_eq!(m["stop_reason"], "max_tokens");
    }
}
