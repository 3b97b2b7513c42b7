//! `POST /v1/responses`: OpenAI's Responses API, as far as Codex CLI and the
//! OpenAI SDK use it. Nothing is stored.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A Responses request. `previous_response_id` is refused (nothing is stored);
/// send the whole conversation in `input`.
#[derive(Serialize, ToSchema)]
pub struct CreateResponseRequest {
    /// A model this instance serves, or a fallback chain's name.
    #[schema(min_length = 1)]
    pub model: String,
    /// A string, or items: messages (`{"role", "content"}`, `type: message`),
    /// `function_call` and `function_call_output`; `reasoning` items are skipped.
    pub input: ResponseInput,
    /// Instructions, sent as a system message.
    pub instructions: Option<String>,
    /// Function tools (`{"type": "function", "name", "description", "parameters"}`); other kinds are skipped.
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Vec<Value>>,
    /// `auto`, `none`, `required`, or `{"type": "function", "name"}`.
    #[schema(value_type = Option<Object>)]
    pub tool_choice: Option<Value>,
    /// Send the Responses API's server-sent events (`response.created` … `response.completed`).
    pub stream: Option<bool>,
    /// Most tokens to generate.
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// `{"format": {"type": "json_object" | "json_schema", …}}` for JSON answers.
    #[schema(value_type = Option<Object>)]
    pub text: Option<Value>,
}

/// A string or items.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ResponseInput {
    /// One user message.
    Text(String),
    /// Items, oldest first.
    #[schema(value_type = Vec<Object>)]
    Items(Vec<Value>),
}

/// A response (`object: response`).
#[derive(Serialize, ToSchema)]
pub struct ResponseObject {
    /// Its id.
    pub id: String,
    /// `response`.
    pub object: String,
    /// When, in seconds since 1970.
    pub created_at: i64,
    /// `completed` or `incomplete`.
    pub status: String,
    /// The model that answered.
    #[schema(min_length = 1)]
    pub model: String,
    /// Output items: a `message` with `output_text` parts, and `function_call` items.
    #[schema(value_type = Vec<Object>)]
    pub output: Vec<Value>,
    /// Token counts.
    pub usage: Option<ResponseUsage>,
}

/// Token counts, the Responses API's way.
#[derive(Serialize, ToSchema)]
pub struct ResponseUsage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Answer tokens.
    pub output_tokens: u64,
    /// Both.
    pub total_tokens: u64,
}

/// One server-sent event of a streamed response: `response.created`,
/// `response.output_item.added`, `response.output_text.delta`,
/// `response.function_call_arguments.delta`, `response.output_item.done`,
/// `response.completed`, …
#[derive(Serialize, ToSchema)]
pub struct ResponseStreamEvent {
    /// The event's type (also its SSE `event:` name).
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's order in the stream.
    pub sequence_number: Option<u64>,
    /// `response.created`, `response.completed`: the response so far.
    pub response: Option<ResponseObject>,
    /// Text and argument deltas.
    pub delta: Option<String>,
    /// Output item events: the item.
    #[schema(value_type = Option<Object>)]
    pub item: Option<Value>,
    /// Which output item.
    pub output_index: Option<u32>,
}
