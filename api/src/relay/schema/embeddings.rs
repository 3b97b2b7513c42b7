//! `POST /v1/completions` (legacy text completions) and `POST /v1/embeddings`.

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompletionUsage, Stop};

/// A legacy text completion request. Fields not listed here reach the provider as sent.
#[derive(Serialize, ToSchema)]
pub struct CreateCompletionRequest {
    /// A model this instance serves.
    #[schema(min_length = 1)]
    pub model: String,
    /// The text to continue: one prompt or several.
    pub prompt: Prompt,
    /// Most tokens to generate. Without it, quota is held for the model's output allowance.
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0–2.
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0–1.
    pub top_p: Option<f64>,
    /// How many completions per prompt.
    pub n: Option<u32>,
    /// Send the answer as server-sent events of `CreateCompletionResponse` chunks, ending with `data: [DONE]`.
    pub stream: Option<bool>,
    /// Where to stop.
    pub stop: Option<Stop>,
    /// An end-user id, passed to the provider.
    pub user: Option<String>,
}

/// One prompt or several.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Prompt {
    /// One prompt.
    One(String),
    /// Several prompts.
    Many(Vec<String>),
}

/// A legacy completion (also the shape of each streamed chunk).
#[derive(Serialize, ToSchema)]
pub struct CreateCompletionResponse {
    /// The provider's id for it.
    pub id: Option<String>,
    /// `text_completion`.
    pub object: Option<String>,
    /// When, in seconds since 1970.
    pub created: Option<i64>,
    /// The model that answered.
    pub model: Option<String>,
    /// The completions.
    pub choices: Vec<CompletionChoice>,
    /// Token counts.
    pub usage: Option<CompletionUsage>,
}

/// One completion.
#[derive(Serialize, ToSchema)]
pub struct CompletionChoice {
    /// Which one.
    pub index: u32,
    /// The text.
    pub text: String,
    /// `stop` or `length`.
    pub finish_reason: Option<String>,
}

/// An embeddings request. Fields not listed here reach the provider as sent.
#[derive(Serialize, ToSchema)]
pub struct CreateEmbeddingRequest {
    /// An embedding model this instance serves.
    #[schema(min_length = 1)]
    pub model: String,
    /// The text to embed: one string or several.
    pub input: EmbeddingInput,
    /// `float` (the default) or `base64`.
    pub encoding_format: Option<String>,
    /// Fewer dimensions, where the model supports it.
    pub dimensions: Option<u32>,
    /// An end-user id, passed to the provider.
    pub user: Option<String>,
}

/// One text or several.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    One(String),
    /// Several texts.
    Many(Vec<String>),
}

/// Embeddings, one per input, in order.
#[derive(Serialize, ToSchema)]
pub struct CreateEmbeddingResponse {
    /// `list`.
    pub object: Option<String>,
    /// The embeddings.
    pub data: Vec<Embedding>,
    /// The model that answered.
    pub model: Option<String>,
    /// Token counts.
    pub usage: Option<CompletionUsage>,
}

/// One embedding.
#[derive(Serialize, ToSchema)]
pub struct Embedding {
    /// `embedding`.
    pub object: Option<String>,
    /// Which input.
    pub index: u32,
    /// The vector: numbers, or base64 text with `encoding_format: base64`.
    pub embedding: EmbeddingVector,
}

/// Numbers, or base64 text.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// The vector.
    Float(Vec<f64>),
    /// The vector's little-endian f32s, base64-encoded.
    Base64(String),
}
