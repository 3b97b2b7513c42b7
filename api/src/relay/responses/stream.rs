//! OpenAI chat chunks as the Responses API's events, translated as they arrive:
//! `response.created`, then per output item `response.output_item.added`, its
//! deltas (`response.output_text.delta`, `response.function_call_arguments.delta`)
//! and `response.output_item.done`, then `response.completed` with the usage.

use serde_json::{json, Value};

use super::reply::{call_item, envelope, message_item, status};
use crate::relay::protocol::{new_id, sse_event, Translate};
use crate::relay::usage::Usage;

/// The output item being streamed.
enum Open {
    Text {
        id: String,
        text: String,
    },
    Call {
        index: u64,
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// One Responses stream being built from OpenAI chunks.
pub struct ResponseStream {
    id: String,
    model: String,
    created_at: i64,
    sequence: u64,
    started: bool,
    ended: bool,
    open: Option<Open>,
    /// Items finished so far; the open one will be at `output.len()`.
    output: Vec<Value>,
    finish: Option<String>,
}

impl ResponseStream {
    /// A stream for `model`.
    pub fn new(model: &str) -> Self {
        ResponseStream {
            id: new_id("resp"),
            model: model.to_string(),
            created_at: chrono::Utc::now().timestamp(),
            sequence: 0,
            started: false,
            ended: false,
            open: None,
            output: Vec::new(),
            finish: None,
        }
    }

    fn emit(&mut self, name: &str, mut data: Value, out: &mut Vec<u8>) {
        data["type"] = json!(name);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        sse_event(out, name, &data);
    }

    fn envelope(&self, status: &str, usage: Option<Usage>) -> Value {
        envelope(
            &self.id,
            &self.model,
            self.created_at,
            status,
            self.output.clone(),
            usage,
        )
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.envelope("in_progress", None);
        self.emit("response.created", json!({"response": response}), out);
        self.emit("response.in_progress", json!({"response": response}), out);
    }

    fn index(&self) -> usize {
        self.output.len()
    }

    fn text(&mut self, delta: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some(Open::Text { .. })) {
            self.close(out);
            let id = new_id("msg");
            let item = json!({"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []});
            self.emit(
                "response.output_item.added",
                json!({"output_index": self.index(), "item": item}),
                out,
            );
            let part = json!({"type": "output_text", "text": "", "annotations": []});
            let added =
                json!({"item_id": id, "output_index": self.index(), "content_index": 0, "part": part});
            self.emit("response.content_part.added", added, out);
            self.open = Some(Open::Text {
                id,
                text: String::new(),
            });
        }
        let index = self.index();
        let Some(Open::Text { id, text }) = &mut self.open else {
            return;
        };
        text.push_str(delta);
        let data =
            json!({"item_id": id, "output_index": index, "content_index": 0, "delta": delta, "logprobs": []});
        self.emit("response.output_text.delta", data, out);
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<u8>) {
        let index = call["index"].as_u64().unwrap_or(0);
        let given = call["id"].as_str().filter(|id| !id.is_empty());
        let same = match &self.open {
            Some(Open::Call {
                index: i, call_id, ..
            }) => *i == index && given.is_none_or(|g| g == call_id),
            _ => false,
        };
        if !same {
            self.close(out);
            let (id, call_id) = (new_id("fc"), given.map_or_else(|| new_id("call"), String::from));
            let name = call["function"]["name"].as_str().unwrap_or_default().to_string();
            let item = call_item(&id, &call_id, &name, "", "in_progress");
            self.emit(
                "response.output_item.added",
                json!({"output_index": self.index(), "item": item}),
                out,
            );
            self.open = Some(Open::Call {
                index,
                id,
                call_id,
                name,
                arguments: String::new(),
            });
        }
        let Some(fragment) = call["function"]["arguments"].as_str().filter(|a| !a.is_empty()) else {
            return;
        };
        let output_index = self.index();
        if let Some(Open::Call { id, arguments, .. }) = &mut self.open {
            arguments.push_str(fragment);
            let data = json!({"item_id": id, "output_index": output_index, "delta": fragment});
            self.emit("response.function_call_arguments.delta", data, out);
        }
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        let index = self.index();
        let item = match self.open.take() {
            None => return,
            Some(Open::Text { id, text }) => {
                let done = json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []});
                self.emit("response.output_text.done", done, out);
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                let done = json!({"item_id": id, "output_index": index, "content_index": 0, "part": part});
                self.emit("response.content_part.done", done, out);
                message_item(&id, &text, "completed")
            }
            Some(Open::Call {
                id,
                call_id,
                name,
                arguments,
                ..
            }) => {
                let arguments = if arguments.is_empty() {
                    "{}".to_string()
                } else {
                    arguments
                };
                let done = json!({"item_id": id, "output_index": index, "arguments": arguments});
                self.emit("response.function_call_arguments.done", done, out);
                call_item(&id, &call_id, &name, &arguments, "completed")
            }
        };
        self.emit(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
            out,
        );
        self.output.push(item);
    }
}

impl Translate for ResponseStream {
    fn chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        let Some(choice) = chunk["choices"].get(0) else {
            return;
        };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.text(text, out);
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
        let status = status(self.finish.as_deref());
        let response = self.envelope(status, Some(usage));
        let name = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(name, json!({"response": response}), out);
    }

    fn fail(&mut self, error: &str, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        self.ended = true;
        let mut response = self.envelope("failed", None);
        response["error"] =
            json!({"code": "server_error", "message": format!("the provider's stream broke: {error}")});
        self.emit("response.failed", json!({"response": response}), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(out: &[u8]) -> Vec<Value> {
        String::from_utf8(out.to_vec())
            .unwrap()
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| serde_json::from_str(e.lines().nth(1).unwrap().strip_prefix("data: ").unwrap()).unwrap())
            .collect()
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    #[test]
    fn a_function_call_streams_as_an_output_item_and_completes() {
        let mut s = ResponseStream::new("m");
        let mut out = Vec::new();
        s.chunk(
            &chunk(json!({"role": "assistant", "content": "On it."}), None),
            &mut out,
        );
        s.chunk(
            &chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "exec_command", "arguments": "{\"cmd\""}}]}), None),
            &mut out,
        );
        s.chunk(
            &chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": ":\"ls\"}"}}]}),
                None,
            ),
            &mut out,
        );
        s.chunk(&chunk(json!({}), Some("tool_calls")), &mut out);
        s.end(
            Usage {
                prompt_tokens: 5,
                completion_tokens: 3,
            },
            &mut out,
        );
        let e = events(&out);
        let types: Vec<&str> = e.iter().map(|v| v["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        let seqs: Vec<u64> = e.iter().map(|v| v["sequence_number"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (0..14).collect::<Vec<_>>());
        let call = &e[12]["item"];
        assert_eq!(call["call_id"], "call_1");
        assert_eq!(call["arguments"], "{\"cmd\":\"ls\"}");
        assert_eq!(call["output_index"], Value::Null);
        assert_eq!(e[12]["output_index"], 1);
        let done = &e[13]["response"];
        assert_eq!(done["output"].as_array().unwrap().len(), 2);
        assert_eq!(done["usage"]["total_tokens"], 8);
    }
}
