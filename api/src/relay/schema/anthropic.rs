//! `POST /v1/messages` and `/v1/messages/count_tokens`: Anthropic's Messages API.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A Messages request (`x-api-key` or a bearer token; any `anthropic-version`).
/// System prompt, text, images, tools and tool results are translated for the
/// provider; `thinking`, `cache_control` and other Anthropic-only fields are dropped.
#[derive(Serialize, ToSchema)]
pub struct CreateMessageRequest {
    /// A model this instance serves, or a fallback chain's name.
    #[schema(min_length = 1)]
    pub model: String,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// The conversation, alternating `user` and `assistant`.
    pub messages: Vec<AnthropicMessage>,
    /// Instructions: text, or text blocks.
    pub system: Option<AnthropicText>,
    /// Send Anthropic's server-sent events (`message_start` … `message_stop`).
    pub stream: Option<bool>,
    /// Sampling temperature, 0–1.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Sample from the k likeliest tokens.
    pub top_k: Option<u32>,
    /// Where to stop.
    pub stop_sequences: Option<Vec<String>>,
    /// Tools the model may use.
    pub tools: Option<Vec<AnthropicTool>>,
    /// `{"type": "auto" | "any" | "none"}` or `{"type": "tool", "name": …}`.
    #[schema(value_type = Option<Object>)]
    pub tool_choice: Option<Value>,
}

/// A token count request: a Messages request without `max_tokens`.
#[derive(Serialize, ToSchema)]
pub struct CountTokensRequest {
    /// A model this instance serves.
    #[schema(min_length = 1)]
    pub model: String,
    /// The conversation.
    pub messages: Vec<AnthropicMessage>,
    /// Instructions.
    pub system: Option<AnthropicText>,
    /// Tools, counted with the prompt.
    pub tools: Option<Vec<AnthropicTool>>,
}

/// The prompt's size.
#[derive(Serialize, ToSchema)]
pub struct CountTokensResponse {
    /// Tokens in the prompt, as this instance estimates them for the model.
    pub input_tokens: u64,
}

/// One turn.
#[derive(Serialize, ToSchema)]
pub struct AnthropicMessage {
    /// Who speaks (a `system` turn joins the system prompt, as Claude Code sends them).
    pub role: AnthropicRole,
    /// Text, or content blocks: `text`, `image`, `tool_use`, `tool_result`.
    pub content: AnthropicContent,
}

/// Who speaks.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnthropicRole {
    /// The user (and tool results).
    User,
    /// The model.
    Assistant,
    /// Instructions, joined to `system`.
    System,
}

/// Text or blocks.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum AnthropicContent {
    /// Plain text.
    Text(String),
    /// Blocks.
    Blocks(Vec<ContentBlock>),
}

/// Text or text blocks.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum AnthropicText {
    /// Plain text.
    Text(String),
    /// Text blocks.
    Blocks(Vec<ContentBlock>),
}

/// A content block, by `type`.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image.
    Image {
        /// Where the image is.
        source: ImageSource,
    },
    /// A tool call (in an assistant turn, or in a reply).
    ToolUse {
        /// The call's id.
        id: String,
        /// The tool.
        name: String,
        /// Its input.
        #[schema(value_type = Object)]
        input: Value,
    },
    /// A tool's result (in a user turn).
    ToolResult {
        /// The `id` of the call it answers.
        tool_use_id: String,
        /// The result: text, or text and image blocks.
        content: Option<ToolResultContent>,
        /// Whether the tool failed.
        is_error: Option<bool>,
    },
}

/// Where an image is: inline, or at a URL.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ImageSource {
    /// The image itself.
    Base64 {
        /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
        media_type: String,
        /// The image, base64-encoded.
        data: String,
    },
    /// An image on the web.
    Url {
        /// Its address.
        url: String,
    },
}

/// A tool's result: text, or text and image blocks.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ToolResultContent {
    /// Plain text.
    Text(String),
    /// Blocks.
    Blocks(Vec<ResultBlock>),
}

/// A block of a tool's result.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResultBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image.
    Image {
        /// Where the image is.
        source: ImageSource,
    },
}

/// A tool the model may use. Tools without `input_schema` (Anthropic's own
/// server tools, such as web search) are not sent to the provider.
#[derive(Serialize, ToSchema)]
pub struct AnthropicTool {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// Its input, as a JSON Schema object.
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<Value>,
}

/// The answer (`type: message`).
#[derive(Serialize, ToSchema)]
pub struct CreateMessageResponse {
    /// Its id.
    pub id: String,
    /// `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `assistant`.
    pub role: String,
    /// The model that answered.
    #[schema(min_length = 1)]
    pub model: String,
    /// Text and `tool_use` blocks.
    pub content: Vec<ContentBlock>,
    /// `end_turn`, `max_tokens`, `stop_sequence` or `tool_use`.
    pub stop_reason: Option<String>,
    /// The stop sequence met, if any.
    pub stop_sequence: Option<String>,
    /// Token counts.
    pub usage: MessageUsage,
}

/// Token counts, Anthropic's way.
#[derive(Serialize, ToSchema)]
pub struct MessageUsage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Answer tokens.
    pub output_tokens: u64,
}

/// One server-sent event of a streamed message: `message_start`,
/// `content_block_start`, `content_block_delta` (`text_delta` or
/// `input_json_delta`), `content_block_stop`, `message_delta` (stop reason and
/// usage), `message_stop`, `ping`, or `error`.
#[derive(Serialize, ToSchema)]
pub struct MessageStreamEvent {
    /// The event's type (also its SSE `event:` name).
    #[serde(rename = "type")]
    pub kind: String,
    /// `message_start`: the message, without content yet.
    pub message: Option<CreateMessageResponse>,
    /// Block events: which block.
    pub index: Option<u32>,
    /// `content_block_start`: the block.
    pub content_block: Option<ContentBlock>,
    /// `content_block_delta` and `message_delta`: what changed.
    #[schema(value_type = Option<Object>)]
    pub delta: Option<Value>,
    /// `message_delta`: the output tokens so far.
    #[schema(value_type = Option<Object>)]
    pub usage: Option<Value>,
}
