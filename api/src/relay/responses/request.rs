//! A Responses API request as an OpenAI chat body: `instructions` and
//! `developer`/`system` messages folded into one system message, `input`
//! messages with their `input_text`/`output_text`/`input_image` parts,
//! `function_call` items as an assistant's `tool_calls` and
//! `function_call_output` items as `tool` messages. `store`, `include`,
//! `reasoning`, `prompt_cache_key`, `client_metadata` and the like are dropped.

use serde_json::{json, Map, Value};

use crate::relay::error::RelayError;

/// Translate a Responses request into a chat completion request.
pub fn to_chat(body: Value) -> Result<Value, RelayError> {
    let Value::Object(mut req) = body else {
        return Err(RelayError::BadRequest(
            "request body must be a JSON object".into(),
        ));
    };
    if req.get("previous_response_id").is_some_and(|v| !v.is_null()) {
        return Err(RelayError::BadRequest(
            "previous_response_id is not supported: Sluice keeps no responses; send the whole \
             conversation in 'input'"
                .into(),
        ));
    }
    let mut system: Vec<String> = req
        .get("instructions")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .into_iter()
        .collect();
    let mut messages = Vec::new();
    match req.remove("input") {
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                add_item(item, i, &mut system, &mut messages)?;
            }
        }
        _ => {
            return Err(RelayError::BadRequest(
                "'input' is required: a string or a list of input items".into(),
            ))
        }
    }
    // Providers' chat templates want the system prompt first and once; a
    // developer message later in the input joins it there.
    if !system.is_empty() {
        messages.insert(0, json!({"role": "system", "content": system.join("\n\n")}));
    }
    let mut chat = Map::new();
    if let Some(model) = req.remove("model") {
        chat.insert("model".into(), model);
    }
    chat.insert("messages".into(), Value::Array(messages));
    for (from, to) in [
        ("max_output_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stream", "stream"),
        ("parallel_tool_calls", "parallel_tool_calls"),
    ] {
        if let Some(v) = req.remove(from).filter(|v| !v.is_null()) {
            chat.insert(to.into(), v);
        }
    }
    let tools = tools(req.get("tools"));
    if tools.is_empty() {
        chat.remove("parallel_tool_calls");
    } else {
        chat.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = req.get("tool_choice").and_then(tool_choice) {
            chat.insert("tool_choice".into(), choice);
        }
    }
    if let Some(format) = req
        .get("text")
        .and_then(|t| t.get("format"))
        .and_then(response_format)
    {
        chat.insert("response_format".into(), format);
    }
    Ok(Value::Object(chat))
}

/// One input item into the chat's messages (or the system prompt).
fn add_item(
    item: &Value,
    i: usize,
    system: &mut Vec<String>,
    messages: &mut Vec<Value>,
) -> Result<(), RelayError> {
    let kind = item.get("type").and_then(Value::as_str);
    match kind {
        Some("message") | None if item.get("role").is_some() => {
            let role = item["role"].as_str().unwrap_or_default();
            let content = content(&item["content"], i)?;
            match role {
                "system" | "developer" => system.push(text_of(&content)),
                "user" => messages.push(json!({"role": "user", "content": content})),
                "assistant" => messages.push(json!({"role": "assistant", "content": text_of(&content)})),
                other => {
                    return Err(RelayError::BadRequest(format!(
                        "input.{i}.role must be user, assistant, system or developer, not '{other}'"
                    )))
                }
            }
        }
        Some("function_call") => {
            let call = json!({
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"].as_str().unwrap_or("{}")},
            });
            // Calls made together belong to one assistant turn (with its text, if any).
            match messages.last_mut() {
                Some(last) if last["role"] == "assistant" => {
                    if !last["tool_calls"].is_array() {
                        last["tool_calls"] = json!([]);
                        if last["content"] == "" {
                            last["content"] = Value::Null;
                        }
                    }
                    last["tool_calls"].as_array_mut().expect("an array").push(call);
                }
                _ => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        Some("function_call_output") => {
            let output = match &item["output"] {
                Value::String(s) => s.clone(),
                parts @ Value::Array(_) => text_of(&content(parts, i)?),
                other => other.to_string(),
            };
            messages.push(json!({"role": "tool", "tool_call_id": item["call_id"], "content": output}));
        }
        // Reasoning items (encrypted or summarised) mean something only to
        // OpenAI; hosted tools' calls (web search, …) were never offered upstream.
        _ => {}
    }
    Ok(())
}

/// Message content as chat content: a string, or parts when there is an image.
fn content(v: &Value, i: usize) -> Result<Value, RelayError> {
    let parts = match v {
        Value::String(s) => return Ok(Value::String(s.clone())),
        Value::Array(parts) => parts,
        _ => {
            return Err(RelayError::BadRequest(format!(
                "input.{i}.content must be a string or a list of content parts"
            )))
        }
    };
    let mut out = Vec::new();
    for p in parts {
        match p.get("type").and_then(Value::as_str) {
            Some("input_text") | Some("output_text") | Some("text") | Some("refusal") => {
                let text = p.get("text").or_else(|| p.get("refusal"));
                out.push(json!({"type": "text", "text": text.and_then(Value::as_str).unwrap_or_default()}));
            }
            Some("input_image") => match p.get("image_url").and_then(Value::as_str) {
                Some(url) => out.push(json!({"type": "image_url", "image_url": {"url": url}})),
                None => {
                    return Err(RelayError::BadRequest(format!(
                        "input.{i}: an input_image needs an image_url (uploaded files are not supported)"
                    )))
                }
            },
            Some("input_file") => {
                return Err(RelayError::BadRequest(format!(
                    "input.{i}: input_file parts cannot be sent to this model's provider"
                )))
            }
            _ => {}
        }
    }
    if out.iter().all(|p| p["type"] == "text") {
        let texts: Vec<&str> = out.iter().filter_map(|p| p["text"].as_str()).collect();
        return Ok(Value::String(texts.join("\n")));
    }
    Ok(Value::Array(out))
}

/// The text of chat content (images left out).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Function tools as chat tools. Hosted tools (`web_search`, `file_search`,
/// …) run only at OpenAI and are left out, and so are `namespace` groups
/// (Codex's `multi_agent_v1`): a call to one of their tools would come back
/// without the namespace its client files it under.
fn tools(v: Option<&Value>) -> Vec<Value> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
        .filter_map(|t| {
            let parameters = t
                .get("parameters")
                .filter(|p| p.is_object())
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            let mut function = json!({"name": t.get("name")?, "parameters": parameters});
            if let Some(d) = t.get("description").filter(|d| d.is_string()) {
                function["description"] = d.clone();
            }
            Some(json!({"type": "function", "function": function}))
        })
        .collect()
}

fn tool_choice(choice: &Value) -> Option<Value> {
    match choice {
        Value::String(s) if ["auto", "none", "required"].contains(&s.as_str()) => Some(choice.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            Some(json!({"type": "function", "function": {"name": o.get("name")?}}))
        }
        _ => None,
    }
}

/// `text.format` as chat's `response_format`.
fn response_format(format: &Value) -> Option<Value> {
    match format.get("type").and_then(Value::as_str)? {
        "json_object" => Some(json!({"type": "json_object"})),
        "json_schema" => {
            let mut schema = json!({"name": format.get("name").cloned().unwrap_or(json!("response")), "schema": format.get("schema")?});
            if let Some(strict) = format.get("strict") {
                schema["strict"] = strict.clone();
            }
            Some(json!({"type": "json_schema", "json_schema": schema}))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_codex_turn_becomes_one_openai_chat() {
        let body = json!({
            "model": "gpt-5-codex",
            "stream": true,
            "store": false,
            "include": ["reasoning.encrypted_content"],
            "reasoning": {"summary": "auto"},
            "prompt_cache_key": "k",
            "client_metadata": {"a": "b"},
            "tool_choice": "auto",
            "parallel_tool_calls": true,
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]},
                {"type": "reasoning", "summary": [], "encrypted_content": "xyz"},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"},
                {"type": "function_call_output", "id": "fco_1", "call_id": "call_1", "output": "a.txt"}
            ],
            "tools": [
                {"type": "function", "name": "exec_command", "description": "Run", "strict": false,
                 "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}},
                {"type": "namespace", "name": "multi_agent_v1", "tools": [{"type": "function", "name": "spawn"}]},
                {"type": "web_search", "external_web_access": false}
            ]
        });
        assert_eq!(
            to_chat(body).unwrap(),
            json!({
                "model": "gpt-5-codex",
                "stream": true,
                "parallel_tool_calls": true,
                "tool_choice": "auto",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "list files"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"}
                ],
                "tools": [{"type": "function", "function": {"name": "exec_command", "description": "Run",
                    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}}]
            })
        );
    }

    #[test]
    fn a_string_input_with_instructions_is_a_system_and_a_user_message() {
        let chat = to_chat(
            json!({"model": "m", "instructions": "Be kind.", "input": "hi", "max_output_tokens": 20}),
        )
        .unwrap();
        assert_eq!(
            chat["messages"],
            json!([{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"}])
        );
        assert_eq!(chat["max_tokens"], 20);
        assert!(to_chat(json!({"model": "m"})).is_err());
        assert!(to_chat(json!({"model": "m", "input": "x", "previous_response_id": "resp_1"})).is_err());
    }
}
