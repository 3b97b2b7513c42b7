//! The inbound protocols `/v1` speaks. Every one is translated into an OpenAI
//! chat body on the way in and its answer translated back on the way out;
//! routing, budgets, quota and logging below never know which one came in.

use bytes::Bytes;
use serde_json::Value;

use super::error::RelayError;
use super::usage::Usage;
use super::{anthropic, responses};

/// Which API a client spoke.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI's own endpoints, relayed as they came.
    #[default]
    OpenAi,
    /// Anthropic's Messages API (`/v1/messages`).
    Anthropic,
    /// OpenAI's Responses API (`/v1/responses`).
    Responses,
}

impl Protocol {
    /// The name stored in the usage log.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenAi => "openai",
            Protocol::Anthropic => "anthropic",
            Protocol::Responses => "responses",
        }
    }

    /// The request as an OpenAI body: parsed, and translated when it is not OpenAI's.
    pub fn openai_body(self, bytes: &[u8]) -> Result<Value, RelayError> {
        let body = json_object(bytes)?;
        match self {
            Protocol::OpenAi => Ok(body),
            Protocol::Anthropic => anthropic::request::to_chat(body),
            Protocol::Responses => responses::request::to_chat(body),
        }
    }

    /// A whole OpenAI chat reply, in this protocol; `model` is the name the
    /// client knows.
    pub fn reply(self, body: Bytes, model: &str, usage: Usage) -> Bytes {
        let translated = match self {
            Protocol::OpenAi => return body,
            Protocol::Anthropic => {
                serde_json::from_slice(&body).map(|reply| anthropic::reply::message(&reply, model, usage))
            }
            Protocol::Responses => {
                serde_json::from_slice(&body).map(|reply| responses::reply::response(&reply, model, usage))
            }
        };
        match translated {
            Ok(v) => Bytes::from(v.to_string()),
            // A 2xx that is not JSON cannot be translated; pass it on rather than hide it.
            Err(_) => body,
        }
    }

    /// What turns OpenAI chunks into this protocol's events, as they arrive;
    /// `None` relays them as they are.
    pub fn stream(self, model: &str, prompt_estimate: u64) -> Option<Box<dyn Translate>> {
        match self {
            Protocol::OpenAi => None,
            Protocol::Anthropic => Some(Box::new(anthropic::stream::MessageStream::new(
                model,
                prompt_estimate,
            ))),
            Protocol::Responses => Some(Box::new(responses::stream::ResponseStream::new(model))),
        }
    }

    /// A provider's refusal of the request (a 4xx passed on), in this protocol's
    /// error shape; OpenAI-shaped protocols pass it on as it came.
    pub fn provider_error(self, status: u16, body: Bytes) -> (Bytes, Option<&'static str>) {
        match self {
            Protocol::OpenAi | Protocol::Responses => (body, None),
            Protocol::Anthropic => (
                anthropic::error::from_provider(status, &body),
                Some("application/json"),
            ),
        }
    }
}

/// Turns the OpenAI chunks of one stream into another protocol's events.
pub trait Translate: Send {
    /// One upstream chunk (an event's `data`, parsed); append what the client gets to `out`.
    fn chunk(&mut self, chunk: &Value, out: &mut Vec<u8>);
    /// The upstream stream ended (`[DONE]` or the end of the body); `usage` is
    /// what the provider reported or what was counted here.
    fn end(&mut self, usage: Usage, out: &mut Vec<u8>);
    /// The upstream stream broke after the client got its first bytes.
    fn fail(&mut self, error: &str, out: &mut Vec<u8>);
}

/// One server-sent event with a name, as Anthropic and the Responses API send them.
pub fn sse_event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// The body as a JSON object, or a 400 saying what is wrong.
pub fn json_object(bytes: &[u8]) -> Result<Value, RelayError> {
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|e| RelayError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    if !body.is_object() {
        return Err(RelayError::BadRequest(
            "request body must be a JSON object".into(),
        ));
    }
    Ok(body)
}

/// The text of an OpenAI tool call's arguments as a JSON object; a provider
/// that sent none (or something unparsable) gets `{}`, since Anthropic's
/// `input` must be an object.
pub fn arguments_object(arguments: Option<&str>) -> Value {
    match arguments.map(str::trim).filter(|a| !a.is_empty()) {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => Value::Object(Default::default()),
        },
        None => Value::Object(Default::default()),
    }
}

/// An id for something the provider gave none for.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", super::request_id())
}
