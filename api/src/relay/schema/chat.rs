//! `POST /v1/chat/completions`: OpenAI's chat completion request, reply and
//! stream chunk.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{CompletionUsage, Stop};

/// A chat completion request. Fields not listed here reach the provider as sent.
#[derive(Serialize, ToSchema)]
pub struct CreateChatCompletionRequest {
    /// A model this instance serves (`GET /v1/models`), or a fallback chain's name.
    #[schema(min_length = 1)]
    pub model: String,
    /// The conversation so far, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Send the answer as server-sent events of `CreateChatCompletionStreamResponse`, ending with `data: [DONE]`.
    pub stream: Option<bool>,
    /// Stream options; `include_usage` adds a last chunk with the token counts.
    pub stream_options: Option<StreamOptions>,
    /// Most tokens to generate. Without it, quota is held for the model's output allowance.
    pub max_tokens: Option<u32>,
    /// The newer name of `max_tokens`.
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature, 0–2.
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0–1.
    pub top_p: Option<f64>,
    /// How many answers to generate.
    pub n: Option<u32>,
    /// Where to stop.
    pub stop: Option<Stop>,
    /// Penalty for tokens already present, −2–2.
    pub presence_penalty: Option<f64>,
    /// Penalty by how often a token appeared, −2–2.
    pub frequency_penalty: Option<f64>,
    /// For repeatable sampling, where the provider supports it.
    pub seed: Option<i64>,
    /// Functions the model may call.
    pub tools: Option<Vec<ChatTool>>,
    /// Whether and which tool to call.
    pub tool_choice: Option<ToolChoice>,
    /// Whether several tool calls may come in one answer.
    pub parallel_tool_calls: Option<bool>,
    /// `{"type": "json_object"}` or `{"type": "json_schema", "json_schema": …}` for JSON answers.
    pub response_format: Option<ResponseFormat>,
    /// An end-user id, passed to the provider.
    pub user: Option<String>,
}

/// One message of the conversation, by its `role`.
#[derive(Serialize, ToSchema)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    /// Instructions.
    System {
        /// The instructions.
        content: TextContent,
        /// A name to tell participants apart.
        name: Option<String>,
    },
    /// Instructions (newer OpenAI models' name for `system`).
    Developer {
        /// The instructions.
        content: TextContent,
        /// A name to tell participants apart.
        name: Option<String>,
    },
    /// What the user said: text, or text and images.
    User {
        /// The message.
        content: UserContent,
        /// A name to tell participants apart.
        name: Option<String>,
    },
    /// An earlier answer, with the tool calls it made.
    Assistant {
        /// The text (null when it only called tools).
        content: Option<TextContent>,
        /// The tools it called.
        tool_calls: Option<Vec<ToolCall>>,
        /// A name to tell participants apart.
        name: Option<String>,
    },
    /// A tool's result.
    Tool {
        /// The result.
        content: TextContent,
        /// The `id` of the call it answers.
        tool_call_id: String,
    },
}

/// Text: a string, or text parts.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum TextContent {
    /// Plain text.
    Text(String),
    /// Text parts, joined.
    Parts(Vec<TextPart>),
}

/// A text part.
#[derive(Serialize, ToSchema)]
pub struct TextPart {
    /// Always `text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub text: String,
}

/// A user's message: a string, or parts (text and images).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum UserContent {
    /// Plain text.
    Text(String),
    /// Text and image parts.
    Parts(Vec<ContentPart>),
}

/// A part of a user's message.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, by URL or as a `data:` URL.
    ImageUrl {
        /// The image.
        image_url: ImageUrl,
    },
}

/// An image reference.
#[derive(Serialize, ToSchema)]
pub struct ImageUrl {
    /// `https://…` or `data:image/png;base64,…`.
    pub url: String,
    /// `auto`, `low` or `high`.
    pub detail: Option<String>,
}

/// A function the model may call.
#[derive(Serialize, ToSchema)]
pub struct ChatTool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDefinition,
}

/// A function's name, purpose and parameters.
#[derive(Serialize, ToSchema)]
pub struct FunctionDefinition {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// Its parameters, as a JSON Schema object.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    /// Whether the arguments must follow `parameters` exactly.
    pub strict: Option<bool>,
}

/// `none`, `auto`, `required`, or one named function.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(String),
    /// This function.
    Named(NamedToolChoice),
}

/// Call this function.
#[derive(Serialize, ToSchema)]
pub struct NamedToolChoice {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Which.
    pub function: FunctionName,
}

/// A function, by name.
#[derive(Serialize, ToSchema)]
pub struct FunctionName {
    /// Its name.
    pub name: String,
}

/// The shape of the answer.
#[derive(Serialize, ToSchema)]
pub struct ResponseFormat {
    /// `text`, `json_object` or `json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `json_schema`: `{name, schema, strict}`.
    #[schema(value_type = Option<Object>)]
    pub json_schema: Option<Value>,
}

/// Streaming options.
#[derive(Serialize, ToSchema)]
pub struct StreamOptions {
    /// Add a last chunk carrying `usage` (Sluice asks the provider for it anyway, to bill).
    pub include_usage: Option<bool>,
}

/// A call the model made.
#[derive(Serialize, ToSchema)]
pub struct ToolCall {
    /// The call's id, for the tool message that answers it.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What it called, with which arguments.
    pub function: FunctionCall,
}

/// A function call.
#[derive(Serialize, ToSchema)]
pub struct FunctionCall {
    /// The function.
    pub name: String,
    /// Its arguments, as a JSON text.
    pub arguments: String,
}

/// The answer to a chat completion request.
#[derive(Serialize, ToSchema)]
pub struct CreateChatCompletionResponse {
    /// The provider's id for it.
    pub id: Option<String>,
    /// `chat.completion`.
    pub object: Option<String>,
    /// When, in seconds since 1970.
    pub created: Option<i64>,
    /// The model that answered (the provider's name for it).
    pub model: Option<String>,
    /// The answers, one per `n`.
    pub choices: Vec<ChatChoice>,
    /// Token counts.
    pub usage: Option<CompletionUsage>,
}

/// One answer.
#[derive(Serialize, ToSchema)]
pub struct ChatChoice {
    /// Which of the `n`.
    pub index: u32,
    /// The message.
    pub message: ChatResponseMessage,
    /// `stop`, `length` (hit `max_tokens`, or the quota left), `tool_calls` or `content_filter`.
    pub finish_reason: Option<String>,
}

/// The model's message.
#[derive(Serialize, ToSchema)]
pub struct ChatResponseMessage {
    /// `assistant`.
    pub role: String,
    /// The text; null when it only called tools.
    pub content: Option<String>,
    /// The tools it called.
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// One server-sent event of a streamed chat completion (`data: {…}`); the
/// stream ends with `data: [DONE]`.
#[derive(Serialize, ToSchema)]
pub struct CreateChatCompletionStreamResponse {
    /// The provider's id, the same in every chunk.
    pub id: Option<String>,
    /// `chat.completion.chunk`.
    pub object: Option<String>,
    /// When, in seconds since 1970.
    pub created: Option<i64>,
    /// The model that answers.
    pub model: Option<String>,
    /// What this chunk adds, per answer; empty in the usage chunk.
    pub choices: Vec<ChatChunkChoice>,
    /// Token counts, in the last chunk.
    pub usage: Option<CompletionUsage>,
}

/// What a chunk adds to one answer.
#[derive(Serialize, ToSchema)]
pub struct ChatChunkChoice {
    /// Which of the `n`.
    pub index: u32,
    /// The new part.
    pub delta: ChatDelta,
    /// Set in the answer's last chunk.
    pub finish_reason: Option<String>,
}

/// A new part of the message.
#[derive(Serialize, ToSchema)]
pub struct ChatDelta {
    /// `assistant`, in the first chunk.
    pub role: Option<String>,
    /// More text.
    pub content: Option<String>,
    /// Tool calls, in pieces: `index` says which call a piece belongs to.
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A piece of a tool call.
#[derive(Serialize, ToSchema)]
pub struct ToolCallDelta {
    /// Which call.
    pub index: u32,
    /// The call's id, in its first piece.
    pub id: Option<String>,
    /// `function`, in its first piece.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The name (first piece) and more of the arguments.
    pub function: Option<FunctionCallDelta>,
}

/// A piece of a function call.
#[derive(Serialize, ToSchema)]
pub struct FunctionCallDelta {
    /// The function, in the first piece.
    pub name: Option<String>,
    /// More of the arguments' JSON text.
    pub arguments: Option<String>,
}
