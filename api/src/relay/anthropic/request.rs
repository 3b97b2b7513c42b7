//! An Anthropic Messages request as an OpenAI chat body: the system prompt
//! (and the `system` messages Claude Code puts inside `messages`) folded into
//! one system message, content blocks into OpenAI parts, `tool_use` into
//! `tool_calls`, `tool_result` into `tool` messages. What an OpenAI provider
//! cannot take (`thinking`, `cache_control`, `context_management`,
//! `output_config`, `metadata`, `defer_loading`, `top_k`, server tools) is dropped.

use serde_json::{json, Map, Value};

use crate::relay::error::RelayError;

/// Translate a Messages request into a chat completion request.
pub fn to_chat(body: Value) -> Result<Value, RelayError> {
    let Value::Object(mut req) = body else {
        return Err(RelayError::BadRequest(
            "request body must be a JSON object".into(),
        ));
    };
    let Some(Value::Array(messages)) = req.remove("messages") else {
        return Err(RelayError::BadRequest(
            "'messages' is required and must be an array of messages".into(),
        ));
    };
    check_tools(req.get("tools"))?;
    let mut system = texts(req.get("system"), "system")?;
    let mut out = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let content = m.get("content");
        match m.get("role").and_then(Value::as_str) {
            // Claude Code sends environment notes as `system` turns: part of the system prompt.
            Some("system") => system.extend(texts(content, "messages")?),
            Some("user") => user_turn(content, &mut out)?,
            Some("assistant") => out.push(assistant_turn(content)?),
            other => {
                return Err(RelayError::BadRequest(format!(
                    "messages.{i}.role must be 'user', 'assistant' or 'system', not {}",
                    other.map_or("missing".into(), |r| format!("'{r}'"))
                )))
            }
        }
    }
    if !system.is_empty() {
        out.insert(0, json!({"role": "system", "content": system.join("\n\n")}));
    }
    let mut chat = Map::new();
    if let Some(model) = req.remove("model") {
        chat.insert("model".into(), model);
    }
    chat.insert("messages".into(), Value::Array(out));
    for (from, to) in [
        ("max_tokens", "max_tokens"),
        ("stop_sequences", "stop"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stream", "stream"),
    ] {
        if let Some(v) = req.remove(from).filter(|v| !v.is_null()) {
            chat.insert(to.into(), v);
        }
    }
    let tools = tools(req.get("tools"));
    if !tools.is_empty() {
        chat.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = req.get("tool_choice") {
            if let Some(c) = tool_choice(choice) {
                chat.insert("tool_choice".into(), c);
            }
            if choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
                chat.insert("parallel_tool_calls".into(), Value::Bool(false));
            }
        }
    }
    Ok(Value::Object(chat))
}

/// The texts of a string or of a list of blocks (non-text blocks are skipped).
fn texts(v: Option<&Value>, field: &str) -> Result<Vec<String>, RelayError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(blocks)) => Ok(blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .map(String::from)
            .collect()),
        Some(_) => Err(RelayError::BadRequest(format!(
            "'{field}' content must be a string or a list of content blocks"
        ))),
    }
}

/// A user turn: its `tool_result` blocks become `tool` messages (which must
/// follow the assistant's calls directly), the rest one user message.
fn user_turn(content: Option<&Value>, out: &mut Vec<Value>) -> Result<(), RelayError> {
    let blocks = match content {
        Some(Value::String(s)) => {
            out.push(json!({"role": "user", "content": s}));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(RelayError::BadRequest(
                "a message's 'content' must be a string or a list of content blocks".into(),
            ))
        }
    };
    let mut parts = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("tool_result") => {
                let mut text = Vec::new();
                match block.get("content") {
                    Some(Value::String(s)) => text.push(s.clone()),
                    Some(Value::Array(inner)) => {
                        for b in inner {
                            match b.get("type").and_then(Value::as_str) {
                                Some("text") => text.extend(b["text"].as_str().map(String::from)),
                                // A tool message carries text only: its images go with the user's turn.
                                Some("image") => parts.extend(image_part(b)?),
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
                out.push(json!({
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id").cloned().unwrap_or(Value::Null),
                    "content": text.join("\n"),
                }));
            }
            _ => parts.extend(part(block)?),
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    // Plain text goes as a string: every OpenAI-compatible provider takes that.
    let content = if parts.iter().all(|p| p["type"] == "text") {
        let texts: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        Value::String(texts.join("\n"))
    } else {
        Value::Array(parts)
    };
    out.push(json!({"role": "user", "content": content}));
    Ok(())
}

/// One content block of a user turn as an OpenAI part; `None` for blocks an
/// OpenAI provider has no use for (thinking, cache hints, server tool results).
fn part(block: &Value) -> Result<Option<Value>, RelayError> {
    Ok(match block.get("type").and_then(Value::as_str) {
        Some("text") => Some(json!({"type": "text", "text": block["text"].as_str().unwrap_or_default()})),
        Some("image") => image_part(block)?,
        Some("document") => match block.pointer("/source/type").and_then(Value::as_str) {
            Some("text") => Some(
                json!({"type": "text", "text": block.pointer("/source/data").and_then(Value::as_str).unwrap_or_default()}),
            ),
            _ => {
                return Err(RelayError::BadRequest(
                    "document blocks other than plain text cannot be sent to this model's provider".into(),
                ))
            }
        },
        _ => None,
    })
}

fn image_part(block: &Value) -> Result<Option<Value>, RelayError> {
    let source = &block["source"];
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => format!(
            "data:{};base64,{}",
            source["media_type"].as_str().unwrap_or("image/png"),
            source["data"].as_str().unwrap_or_default()
        ),
        Some("url") => source["url"].as_str().unwrap_or_default().to_string(),
        _ => {
            return Err(RelayError::BadRequest(
                "an image must have a base64 or url source".into(),
            ))
        }
    };
    Ok(Some(json!({"type": "image_url", "image_url": {"url": url}})))
}

/// An assistant turn: its text, and its `tool_use` blocks as `tool_calls`.
/// Thinking blocks are dropped: their signatures mean something only to Anthropic.
fn assistant_turn(content: Option<&Value>) -> Result<Value, RelayError> {
    let blocks = match content {
        Some(Value::String(s)) => return Ok(json!({"role": "assistant", "content": s})),
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(RelayError::BadRequest(
                "a message's 'content' must be a string or a list of content blocks".into(),
            ))
        }
    };
    let mut text = Vec::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.extend(block["text"].as_str().map(String::from)),
            Some("tool_use") => calls.push(json!({
                "id": block["id"],
                "type": "function",
                "function": {
                    "name": block["name"],
                    "arguments": block.get("input").unwrap_or(&json!({})).to_string(),
                },
            })),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": text.join("\n")});
    if !calls.is_empty() {
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(message)
}

/// Client tools as OpenAI functions. Anthropic's own tool types (web search,
/// code execution, its bash and editor schemas) carry no `input_schema` and
/// only Anthropic can run or describe them: they are left out.
/// Tools as the document describes them: each an object with a string `name`,
/// and `input_schema` (an object) and `description` (a string) when present.
/// Tools without `input_schema` (Anthropic's server tools) pass and are skipped.
fn check_tools(tools: Option<&Value>) -> Result<(), RelayError> {
    let well_formed = |t: &Value| {
        t.get("name").is_some_and(Value::is_string)
            && t.get("input_schema").is_none_or(|s| s.is_object() || s.is_null())
            && t.get("description").is_none_or(|d| d.is_string() || d.is_null())
    };
    match tools {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(tools)) if tools.iter().all(well_formed) => Ok(()),
        Some(_) => Err(RelayError::BadRequest(
            "'tools' must be an array of tools, each with a 'name', an object 'input_schema' and a \
             text 'description'"
                .into(),
        )),
    }
}

fn tools(v: Option<&Value>) -> Vec<Value> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let schema = t.get("input_schema")?;
            let mut function = json!({"name": t.get("name")?, "parameters": schema});
            if let Some(d) = t.get("description").filter(|d| d.is_string()) {
                function["description"] = d.clone();
            }
            Some(json!({"type": "function", "function": function}))
        })
        .collect()
}

fn tool_choice(choice: &Value) -> Option<Value> {
    match choice.get("type").and_then(Value::as_str)? {
        "auto" => Some(json!("auto")),
        "any" => Some(json!("required")),
        "none" => Some(json!("none")),
        "tool" => Some(json!({"type": "function", "function": {"name": choice.get("name")?}})),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claude_code_turn_becomes_one_openai_chat() {
        let body = json!({
            "model": "claude-opus-5-5",
            "max_tokens": 128000,
            "stream": true,
            "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "list files"}]},
                {"role": "system", "content": "cwd: /tmp"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "...", "signature": "sig"},
                    {"type": "text", "text": "Running ls."},
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt", "is_error": false},
                    {"type": "text", "text": "and now?"}
                ]}
            ],
            "tools": [
                {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}, "defer_loading": true},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
            ],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "thinking": {"type": "adaptive"},
            "context_management": {"edits": []},
            "output_config": {"effort": "medium"},
            "metadata": {"user_id": "u"},
            "top_k": 5
        });
        let chat = to_chat(body).unwrap();
        assert_eq!(
            chat,
            json!({
                "model": "claude-opus-5-5",
                "max_tokens": 128000,
                "stream": true,
                "messages": [
                    {"role": "system", "content": "You are Claude Code.\n\ncwd: /tmp"},
                    {"role": "user", "content": "list files"},
                    {"role": "assistant", "content": "Running ls.", "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"},
                    {"role": "user", "content": "and now?"}
                ],
                "tools": [{"type": "function", "function": {"name": "Bash", "description": "Run a command", "parameters": {"type": "object"}}}],
                "tool_choice": "auto",
                "parallel_tool_calls": false
            })
        );
    }

    #[test]
    fn images_become_data_urls_and_bad_roles_are_refused() {
        let chat = to_chat(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAA"}},
            {"type": "text", "text": "what is it?"}
        ]}]}))
        .unwrap();
        assert_eq!(
            chat["messages"][0]["content"],
            json!([
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAA"}},
                {"type": "text", "text": "what is it?"}
            ])
        );
        let err = to_chat(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]})).unwrap_err();
        assert!(err.to_string().contains("messages.0.role"), "{err}");
        assert!(to_chat(json!({"model": "m"})).is_err());
    }
}
