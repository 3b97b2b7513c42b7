//! Server-sent events, relayed event by event as they arrive. The filter reads
//! each complete event to learn the usage and the text, and drops the final
//! usage-only chunk when Sluice asked for it on the client's behalf.

use bytes::Bytes;
use serde_json::Value;

use super::usage::{usage_from_json, Usage};

/// Splits an upstream SSE byte stream into events and filters them.
#[derive(Debug)]
pub struct SseFilter {
    buf: Vec<u8>,
    strip_usage_chunk: bool,
    /// The usage the provider reported, if it did.
    pub usage: Option<Usage>,
    /// Text generated so far (content, reasoning, tool arguments), for local counting.
    pub text: String,
}

impl SseFilter {
    /// A filter; `strip_usage_chunk` drops usage-only chunks the client did not ask for.
    pub fn new(strip_usage_chunk: bool) -> Self {
        SseFilter {
            buf: Vec::new(),
            strip_usage_chunk,
            usage: None,
            text: String::new(),
        }
    }

    /// Feed upstream bytes; returns the complete events to send on (maybe none yet).
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some((end, sep)) = find_event_end(&buf[start..]) {
            let event_end = start + end + sep;
            if self.inspect(&buf[start..start + end]) {
                out.extend_from_slice(&buf[start..event_end]);
            }
            start = event_end;
        }
        buf.drain(..start);
        self.buf = buf;
        Bytes::from(out)
    }

    /// The upstream ended: whatever is left (an unterminated event) goes on as is.
    pub fn finish(&mut self) -> Bytes {
        let rest = std::mem::take(&mut self.buf);
        if !rest.is_empty() && !self.inspect(&rest) {
            return Bytes::new();
        }
        Bytes::from(rest)
    }

    /// Read one event; false when it must not reach the client.
    fn inspect(&mut self, event: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(event) else {
            return true;
        };
        let data: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if data.is_empty() {
            return true;
        }
        let data = data.join("\n");
        if data.trim() == "[DONE]" {
            return true;
        }
        let Ok(json) = serde_json::from_str::<Value>(&data) else {
            return true;
        };
        if let Some(u) = usage_from_json(&json) {
            self.usage = Some(u);
        }
        let choices = json.get("choices").and_then(Value::as_array);
        if let Some(choices) = choices {
            for c in choices {
                collect_text(c, &mut self.text);
            }
        }
        let usage_only =
            choices.is_some_and(|c| c.is_empty()) && json.get("usage").is_some_and(|u| !u.is_null());
        !(self.strip_usage_chunk && usage_only)
    }
}

/// Text in one streamed choice: content, reasoning, legacy text, tool arguments.
fn collect_text(choice: &Value, out: &mut String) {
    if let Some(s) = choice.get("text").and_then(Value::as_str) {
        out.push_str(s);
    }
    let Some(delta) = choice.get("delta") else {
        return;
    };
    for field in ["content", "reasoning_content"] {
        if let Some(s) = delta.get(field).and_then(Value::as_str) {
            out.push_str(s);
        }
    }
    for call in delta
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for field in ["name", "arguments"] {
            if let Some(s) = call
                .pointer(&format!("/function/{field}"))
                .and_then(Value::as_str)
            {
                out.push_str(s);
            }
        }
    }
}

/// Where the first event ends: (length of the event, length of the blank line).
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i, 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        if buf[i] == b'\r'
            && buf.get(i + 1) == Some(&b'\n')
            && buf.get(i + 2) == Some(&b'\r')
            && buf.get(i + 3) == Some(&b'\n')
        {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n";
    const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    #[test]
    fn events_split_across_reads_are_sent_whole_and_in_order() {
        let mut f = SseFilter::new(false);
        let all = format!("{CHUNK}{USAGE}{DONE}");
        let (a, b) = all.as_bytes().split_at(30);
        let mut out = f.push(a).to_vec();
        assert!(out.is_empty(), "half an event is held back");
        out.extend_from_slice(&f.push(b));
        out.extend_from_slice(&f.finish());
        assert_eq!(String::from_utf8(out).unwrap(), all);
        assert_eq!(
            f.usage,
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 2
            })
        );
        assert_eq!(f.text, "Hel");
    }

    #[test]
    fn the_usage_chunk_is_dropped_when_the_client_did_not_ask() {
        let mut f = SseFilter::new(true);
        let out = f.push(format!("{CHUNK}{USAGE}{DONE}").as_bytes());
        assert_eq!(String::from_utf8(out.to_vec()).unwrap(), format!("{CHUNK}{DONE}"));
        assert_eq!(f.usage.unwrap().completion_tokens, 2);
    }

    #[test]
    fn crlf_separated_events_are_understood() {
        let mut f = SseFilter::new(true);
        let usage = USAGE.replace("\n\n", "\r\n\r\n");
        let out = f.push(format!("{usage}data: [DONE]\r\n\r\n").as_bytes());
        assert_eq!(String::from_utf8(out.to_vec()).unwrap(), "data: [DONE]\r\n\r\n");
        assert!(f.usage.is_some());
    }
}
