//! OpenAI chat chunks as Anthropic's event sequence, translated as they arrive:
//! `message_start`, then for each text or tool call a `content_block_start`,
//! its deltas (`text_delta`, `input_json_delta`) and `content_block_stop`, then
//! `message_delta` with the stop reason and usage, and `message_stop`.

use serde_json::{json, Value};

use super::reply::stop_reason;
use crate::relay::protocol::{new_id, sse_event, Translate};
use crate::relay::usage::Usage;

/// The content block being streamed.
#[derive(Debug, PartialEq)]
enum Open {
    Text,
    /// A tool call: OpenAI's index for it, and its id.
    Tool {
        index: u64,
        id: String,
    },
}

/// One Messages stream being built from OpenAI chunks.
pub struct MessageStream {
    id: String,
    model: String,
    prompt_estimate: u64,
    started: bool,
    ended: bool,
    open: Option<Open>,
    /// Blocks started so far; the open one has index `blocks - 1`.
    blocks: usize,
    called_tools: bool,
    finish: Option<String>,
}

impl MessageStream {
    /// A stream for `model`; `prompt_estimate` is reported in `message_start`
    /// until the provider's own count arrives with `message_delta`.
    pub fn new(model: &str, prompt_estimate: u64) -> Self {
        MessageStream {
            id: new_id("msg"),
            model: model.to_string(),
            prompt_estimate,
            started: false,
            ended: false,
            open: None,
            blocks: 0,
            called_tools: false,
            finish: None,
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": self.prompt_estimate, "output_tokens": 0},
        });
        sse_event(
            out,
            "message_start",
            &json!({"type": "message_start", "message": message}),
        );
    }

    fn open_block(&mut self, block: Value, open: Open, out: &mut Vec<u8>) {
        self.close(out);
        sse_event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.blocks, "content_block": block}),
        );
        self.blocks += 1;
        self.open = Some(open);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_some() {
            let index = self.blocks - 1;
            sse_event(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    fn delta(&self, delta: Value, out: &mut Vec<u8>) {
        let index = self.blocks - 1;
        sse_event(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<u8>) {
        let index = call["index"].as_u64().unwrap_or(0);
        let id = call["id"].as_str().filter(|id| !id.is_empty());
        // A new call: another index, or (from providers that number every call 0) another id.
        let same = match &self.open {
            Some(Open::Tool {
                index: i,
                id: open_id,
            }) => *i == index && id.is_none_or(|id| id == open_id),
            _ => false,
        };
        if !same {
            let id = id.map_or_else(|| new_id("toolu"), String::from);
            let name = call["function"]["name"].as_str().unwrap_or_default();
            let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
            self.open_block(block, Open::Tool { index, id }, out);
            self.called_tools = true;
        }
        if let Some(args) = call["function"]["arguments"].as_str().filter(|a| !a.is_empty()) {
            self.delta(json!({"type": "input_json_delta", "partial_json": args}), out);
        }
    }
}

impl Translate for MessageStream {
    fn chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        // The usage-only chunk has no choice; its usage is read by the filter.
        let Some(choice) = chunk["choices"].get(0) else {
            return;
        };
        let delta = &choice["delta"];
        // Reasoning text is not passed on: a thinking block needs a signature
        // only Anthropic can make, and clients send it back to be checked.
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            if self.open != Some(Open::Text) {
                self.open_block(json!({"type": "text", "text": ""}), Open::Text, out);
            }
            self.delta(json!({"type": "text_delta", "text": text}), out);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            self.tool_call(call, out);
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.finish = Some(finish.to_string());
        }
    }

    fn end(&mut self, usage: Usage, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        self.close(out);
        self.ended = true;
        let stop = stop_reason(self.finish.as_deref(), self.called_tools);
        sse_event(
            out,
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens},
            }),
        );
        sse_event(out, "message_stop", &json!({"type": "message_stop"}));
    }

    fn fail(&mut self, error: &str, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let error = json!({"type": "api_error", "message": format!("the provider's stream broke: {error}")});
        sse_event(out, "error", &json!({"type": "error", "error": error}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (event name, data) of every event written.
    fn events(out: &[u8]) -> Vec<(String, Value)> {
        String::from_utf8(out.to_vec())
            .unwrap()
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let mut lines = e.lines();
                let name = lines.next().unwrap().strip_prefix("event: ").unwrap().to_string();
                let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
                (name, serde_json::from_str(data).unwrap())
            })
            .collect()
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    #[test]
    fn text_then_a_tool_call_stream_as_two_blocks() {
        let mut s = MessageStream::new("claude-x", 7);
        let mut out = Vec::new();
        s.chunk(
            &chunk(json!({"role": "assistant", "content": ""}), None),
            &mut out,
        );
        s.chunk(&chunk(json!({"content": "Let me "}), None), &mut out);
        s.chunk(&chunk(json!({"content": "look."}), None), &mut out);
        s.chunk(
            &chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                "function": {"name": "Read", "arguments": "{\"pa"}}]}),
                None,
            ),
            &mut out,
        );
        s.chunk(
            &chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "th\":\"a\"}"}}]}),
                None,
            ),
            &mut out,
        );
        s.chunk(&chunk(json!({}), Some("tool_calls")), &mut out);
        s.chunk(
            &json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}),
            &mut out,
        );
        s.end(
            Usage {
                prompt_tokens: 9,
                completion_tokens: 4,
            },
            &mut out,
        );
        let names: Vec<String> = events(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let e = events(&out);
        assert_eq!(e[0].1["message"]["usage"]["input_tokens"], 7);
        assert_eq!(e[5].1["index"], 1);
        assert_eq!(
            e[5].1["content_block"],
            json!({"type": "tool_use", "id": "call_9", "name": "Read", "input": {}})
        );
        assert_eq!(e[7].1["delta"]["partial_json"], "th\":\"a\"}");
        assert_eq!(e[9].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(e[9].1["usage"], json!({"input_tokens": 9, "output_tokens": 4}));
    }

    #[test]
    fn a_broken_stream_ends_with_an_error_event() {
        let mut s = MessageStream::new("m", 1);
        let mut out = Vec::new();
        s.chunk(&chunk(json!({"content": "Hi"}), None), &mut out);
        s.fail("connection reset", &mut out);
        s.end(Usage::default(), &mut out);
        let e = events(&out);
        assert_eq!(e.last().unwrap().0, "error");
        assert_eq!(e.last().unwrap().1["error"]["type"], "api_error");
        assert!(e.iter().all(|(n, _)| n != "message_stop"));
    }
}
