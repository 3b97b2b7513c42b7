//! Token counting: the estimate a request is admitted with, and the usage it
//! is settled with (the provider's when it reports one, counted here otherwise).

use serde_json::Value;
use tiktoken_rs::CoreBPE;

/// Tokens a request used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt (input) tokens.
    pub prompt_tokens: u64,
    /// Completion (output) tokens.
    pub completion_tokens: u64,
}

impl Usage {
    /// Prompt plus completion.
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// The usage a whole reply reports, read without building the rest of the
/// reply's JSON (the relay passes it on untouched).
pub fn reported_usage(body: &[u8]) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct Reply {
        usage: Option<Reported>,
    }
    #[derive(serde::Deserialize)]
    struct Reported {
        prompt_tokens: u64,
        #[serde(default)]
        completion_tokens: Option<u64>,
    }
    let u = serde_json::from_slice::<Reply>(body).ok()?.usage?;
    Some(Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens.unwrap_or(0),
    })
}

/// The usage object of a provider reply or chunk, if it has one.
pub fn usage_from_json(v: &Value) -> Option<Usage> {
    let u = v.get("usage")?;
    let prompt = u.get("prompt_tokens").and_then(Value::as_u64)?;
    let completion = u.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0);
    Some(Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
    })
}

/// Counts tokens with the o200k BPE: exact for current OpenAI models and a
/// close estimate for others, which is all a budget needs before settling.
///
/// Counts are remembered per text (by its 128-bit hash): an agent sends its
/// whole conversation again with every turn, and each earlier message would
/// otherwise go through the BPE once per turn, in full.
#[derive(Default)]
pub struct TokenCounter {
    /// Loaded at the first count: tens of megabytes a deployment whose
    /// providers report usage, with no price or token limit, never needs.
    bpe: std::sync::OnceLock<CoreBPE>,
    /// Token counts of texts seen lately, by the text's XXH3-128; made at the
    /// first count (it takes about 2 MB at once).
    counted: std::sync::OnceLock<quick_cache::sync::Cache<u128, u64>>,
}

/// How many texts' counts are remembered: about 40 bytes each.
const REMEMBERED_TEXTS: usize = 65_536;

/// Texts shorter than this are counted again each time: the BPE is about as
/// quick as a lookup for them.
const REMEMBER_FROM_BYTES: usize = 16;

/// Tokens a chat message costs beyond its text (role, separators).
const PER_MESSAGE: u64 = 4;

impl TokenCounter {
    /// The BPE tables, loaded on first use.
    fn bpe(&self) -> &CoreBPE {
        self.bpe
            .get_or_init(|| tiktoken_rs::o200k_base().expect("the o200k tables are built in"))
    }

    /// Tokens in a text.
    pub fn count(&self, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        if text.len() < REMEMBER_FROM_BYTES {
            return self.encode(text);
        }
        let counted = self
            .counted
            .get_or_init(|| quick_cache::sync::Cache::new(REMEMBERED_TEXTS));
        let key = xxhash_rust::xxh3::xxh3_128(text.as_bytes());
        if let Some(tokens) = counted.get(&key) {
            return tokens;
        }
        let tokens = self.encode(text);
        counted.insert(key, tokens);
        tokens
    }

    /// Tokens in a text, through the BPE.
    fn encode(&self, text: &str) -> u64 {
        self.bpe().encode_ordinary(text).len() as u64
    }

    /// Prompt tokens of a request body, whatever the endpoint.
    pub fn prompt_tokens(&self, body: &Value) -> u64 {
        let mut total = 0;
        if let Some(messages) = body.get("messages").and_then(Value::as_array) {
            for m in messages {
                total += PER_MESSAGE + self.count_value_text(m.get("content"));
                if let Some(calls) = m.get("tool_calls") {
                    total += self.count(&calls.to_string());
                }
            }
            total += 3;
        }
        if let Some(tools) = body.get("tools") {
            total += self.count(&tools.to_string());
        }
        total += self.count_value_text(body.get("prompt"));
        total += self.count_value_text(body.get("input"));
        total
    }

    /// Completion tokens of a non-stream reply.
    pub fn completion_tokens(&self, reply: &Value) -> u64 {
        let mut text = String::new();
        if let Some(choices) = reply.get("choices").and_then(Value::as_array) {
            for c in choices {
                if let Some(m) = c.get("message") {
                    for field in ["content", "reasoning_content"] {
                        if let Some(s) = m.get(field).and_then(Value::as_str) {
                            text.push_str(s);
                        }
                    }
                    if let Some(calls) = m.get("tool_calls") {
                        text.push_str(&calls.to_string());
                    }
                }
                if let Some(s) = c.get("text").and_then(Value::as_str) {
                    text.push_str(s);
                }
            }
        }
        self.count(&text)
    }

    /// Text in a string, an array of strings, or an array of content parts.
    fn count_value_text(&self, v: Option<&Value>) -> u64 {
        match v {
            Some(Value::String(s)) => self.count(s),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => self.count(s),
                    Value::Object(part) => part
                        .get("text")
                        .and_then(Value::as_str)
                        .map_or(0, |s| self.count(s)),
                    _ => 0,
                })
                .sum(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_tokens_count_every_text_part() {
        let c = TokenCounter::default();
        let plain = c.prompt_tokens(&json!({"messages":[{"role":"user","content":"hello world"}]}));
        let parts = c.prompt_tokens(&json!({"messages":[{"role":"user","content":[{"type":"text","text":"hello world"},{"type":"image_url","image_url":{"url":"x"}}]}]}));
        assert_eq!(plain, parts);
        assert_eq!(plain, PER_MESSAGE + 2 + 3);
        assert_eq!(
            c.prompt_tokens(&json!({"input":["a b","c"]})),
            c.count("a b") + c.count("c")
        );
    }

    #[test]
    fn counts_of_texts_are_remembered_and_match_the_bpe() {
        let c = TokenCounter::default();
        let text = "An agent resends its whole conversation with every turn. ".repeat(20);
        let tokens = c.count(&text);
        assert_eq!(tokens, c.encode(&text));
        let key = xxhash_rust::xxh3::xxh3_128(text.as_bytes());
        assert_eq!(c.counted.get().unwrap().get(&key), Some(tokens));
        assert_eq!(c.count(&text), tokens);
        // Short texts are counted each time, not remembered.
        assert_eq!(c.count("hi there"), c.encode("hi there"));
        assert_eq!(c.counted.get().unwrap().len(), 1);
    }

    #[test]
    fn provider_usage_is_read_from_replies_and_chunks() {
        let u = usage_from_json(&json!({"usage":{"prompt_tokens":3,"completion_tokens":4}})).unwrap();
        assert_eq!(u.total(), 7);
        assert_eq!(usage_from_json(&json!({"usage":null})), None);
        assert_eq!(
            usage_from_json(&json!({"usage":{"prompt_tokens":3,"total_tokens":3}}))
                .unwrap()
                .completion_tokens,
            0
        );
    }
}
