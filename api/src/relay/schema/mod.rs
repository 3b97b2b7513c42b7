//! The `/v1` bodies as the OpenAPI document describes them, so generated
//! clients get types: OpenAI's chat, completions, embeddings and models,
//! Anthropic's Messages and OpenAI's Responses. These types only describe; the
//! relay passes a request through as the client wrote it (but for the model
//! name), so every object here is open to fields it does not list, and the
//! provider's reply comes back with whatever else it carries.

pub mod anthropic;
pub mod chat;
pub mod embeddings;
pub mod responses;

use serde::Serialize;
use utoipa::ToSchema;

/// Token counts of a request, as the provider reported them (OpenAI's shape).
#[derive(Serialize, ToSchema)]
pub struct CompletionUsage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens in the answer (absent for embeddings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
    /// Both together.
    pub total_tokens: u64,
}

/// Where to stop: one sequence or up to four.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Stop {
    /// One sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}
