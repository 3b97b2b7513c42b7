//! Server-sent events, relayed event by event as they arrive. The filter reads
//! each complete event to learn the usage and the text, and drops the final
//! usage-only chunk when Sluice asked for it on the client's behalf. A client
//! that spoke another protocol gets each event translated instead, as it arrives.

use bytes::Bytes;
use serde_json::Value;

use super::protocol::Translate;
use super::usage::{usage_from_json, Usage};

/// Splits an upstream SSE byte stream into events and filters them.
pub struct SseFilter {
    buf: Vec<u8>,
    strip_usage_chunk: bool,
    /// Turns OpenAI chunks into another protocol's events; `None` passes them on.
    translate: Option<Box<dyn Translate>>,
    /// The usage the provider reported, if it did.
    pub usage: Option<Usage>,
    /// Text generated so far (content, reasoning, tool arguments), for local counting.
    pub text: String,
}

impl std::fmt::Debug for SseFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseFilter")
            .field("buffered", &self.buf.len())
            .field("translated", &self.translate.is_some())
            .field("usage", &self.usage)
            .finish()
    }
}

/// What one upstream event held.
enum Seen {
    /// A JSON chunk.
    Chunk(Value),
    /// `data: [DONE]`.
    Done,
    /// A comment, a keep-alive or data that is not JSON.
    Other,
}

impl SseFilter {
    /// A filter; `strip_usage_chunk` drops usage-only chunks the client did not ask for.
    pub fn new(strip_usage_chunk: bool) -> Self {
        SseFilter {
            buf: Vec::new(),
            strip_usage_chunk,
            translate: None,
            usage: None,
            text: String::new(),
        }
    }

    /// A filter that hands every chunk to `translate` instead of passing it on.
    pub fn translated(translate: Box<dyn Translate>) -> Self {
        SseFilter {
            translate: Some(translate),
            ..SseFilter::new(false)
        }
    }

    /// Feed upstream bytes; returns the complete events to send on (maybe none yet).
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        // Only an unterminated event is kept between chunks, in a buffer of its
        // own size: an open stream holds no buffer between whole events.
        let joined;
        let buf: &[u8] = if self.buf.is_empty() {
            chunk
        } else {
            let mut rest = std::mem::take(&mut self.buf);
            rest.extend_from_slice(chunk);
            joined = rest;
            &joined
        };
        let mut out = Vec::new();
        let mut start = 0;
        while let Some((end, sep)) = find_event_end(&buf[start..]) {
            let event_end = start + end + sep;
            let seen = self.inspect(&buf[start..start + end]);
            let keep = self.keep(&seen);
            match &mut self.translate {
                Some(t) => {
                    if let Seen::Chunk(chunk) = &seen {
                        t.chunk(chunk, &mut out);
                    }
                }
                None if keep => out.extend_from_slice(&buf[start..event_end]),
                None => {}
            }
            start = event_end;
        }
        if start < buf.len() {
            self.buf = buf[start..].to_vec();
        }
        Bytes::from(out)
    }

    /// The upstream ended: whatever is left (an unterminated event) goes on as
    /// is; a translated stream gets its closing events. `counted` is the usage
    /// to report when the provider reported none.
    pub fn finish(&mut self, counted: impl FnOnce(&SseFilter) -> Usage) -> Bytes {
        let rest = std::mem::take(&mut self.buf);
        let seen = if rest.is_empty() {
            Seen::Other
        } else {
            self.inspect(&rest)
        };
        if self.translate.is_none() {
            return if rest.is_empty() || self.keep(&seen) {
                Bytes::from(rest)
            } else {
                Bytes::new()
            };
        }
        let usage = self.usage.unwrap_or_else(|| counted(self));
        let mut out = Vec::new();
        if let Some(t) = &mut self.translate {
            if let Seen::Chunk(chunk) = &seen {
                t.chunk(chunk, &mut out);
            }
            t.end(usage, &mut out);
        }
        Bytes::from(out)
    }

    /// The upstream broke mid-stream: what a translated stream sends to say so
    /// (an OpenAI stream just ends).
    pub fn broken(&mut self, error: &str) -> Bytes {
        let Some(t) = &mut self.translate else {
            return self.finish(|_| Usage::default());
        };
        let mut out = Vec::new();
        t.fail(error, &mut out);
        Bytes::from(out)
    }

    /// Whether an event reaches an OpenAI client: all but the usage-only chunk
    /// it did not ask for.
    fn keep(&self, seen: &Seen) -> bool {
        let Seen::Chunk(json) = seen else {
            return true;
        };
        let usage_only = json
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(|c| c.is_empty())
            && json.get("usage").is_some_and(|u| !u.is_null());
        !(self.strip_usage_chunk && usage_only)
    }

    /// Read one event, learning the usage and the text.
    fn inspect(&mut self, event: &[u8]) -> Seen {
        let Ok(text) = std::str::from_utf8(event) else {
            return Seen::Other;
        };
        let data: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if data.is_empty() {
            return Seen::Other;
        }
        let data = data.join("\n");
        if data.trim() == "[DONE]" {
            return Seen::Done;
        }
        let Ok(json) = serde_json::from_str::<Value>(&data) else {
            return Seen::Other;
        };
        if let Some(u) = usage_from_json(&json) {
            self.usage = Some(u);
        }
        if let Some(choices) = json.get("choices").and_then(Value::as_array) {
            for c in choices {
                collect_text(c, &mut self.text);
            }
        }
        Seen::Chunk(json)
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
        out.extend_from_slice(&f.finish(|_| Usage::default()));
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
    fn only_an_unterminated_event_is_held_between_reads() {
        let mut f = SseFilter::new(false);
        let all = format!("{CHUNK}{CHUNK}{USAGE}");
        // Cut inside the second event, inside the third, then at its end.
        let cuts = [0, CHUNK.len() + 10, 2 * CHUNK.len() + 20, all.len()];
        let mut out = Vec::new();
        for pair in cuts.windows(2) {
            out.extend_from_slice(&f.push(&all.as_bytes()[pair[0]..pair[1]]));
            let held = pair[1] - all[..pair[1]].rfind("\n\n").unwrap() - 2;
            assert_eq!(f.buf.len(), held);
        }
        assert_eq!(String::from_utf8(out).unwrap(), all);
        assert_eq!(f.buf.capacity(), 0, "no buffer is kept between whole events");
        assert_eq!(f.push(DONE.as_bytes()), DONE.as_bytes());
        assert_eq!(f.buf.capacity(), 0);
        assert_eq!(f.text, "HelHel");
        assert_eq!(f.usage.unwrap().completion_tokens, 2);
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
