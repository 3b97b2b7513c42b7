//! What a priced request may cost, held against its token and user before it
//! is sent, so that no number of concurrent requests can spend more than is left.
//!
//! A request holds its prompt (estimated on the safe side) plus its whole output
//! allowance: its own `max_tokens`, or the model's allowance when it names none
//! — and then the provider is told that `max_tokens`, so the answer cannot cost
//! more than was held. When what is left cannot pay for all of it, the group's
//! policy decides: `clamp` sends it with `max_tokens` lowered to what it can
//! pay, `refuse` answers `insufficient_quota`. Quota that other requests of the
//! account hold (and may not spend) is waited for, within the wait bound.

use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;
use sluice_actors::balances::Ask;
use sluice_actors::calibration::Calibration;
use sluice_actors::ledger::{Hold, PendingHold, Reserved};
use sluice_actors::Ticket;

use super::error::RelayError;
use super::forward::Pricing;
use crate::billing::{affordable_output, QuotaPolicy};
use crate::catalog::token_cache::TokenInfo;
use crate::state::AppState;

/// How much more than the local estimate a prompt is held for while nothing is
/// known of how the model's providers count: tokenizers differ by up to a third.
const UNKNOWN_COUNT_FACTOR: f64 = 1.5;

/// How providers count prompts, per model, as their reports show; the quota
/// holds follow it so a tokenizer mismatch overruns by a sliver at most.
#[derive(Default)]
pub struct PromptCounts(Mutex<Calibration>);

impl PromptCounts {
    /// The prompt's tokens on the safe side.
    pub fn safe(&self, model: &str, estimate: u64) -> u64 {
        let counts = self.0.lock().expect("prompt counts lock");
        if counts.knows(model) {
            counts.scale(model, estimate)
        } else {
            (estimate as f64 * UNKNOWN_COUNT_FACTOR).ceil() as u64
        }
    }

    /// A provider reported `reported` prompt tokens for a prompt estimated at `estimate`.
    pub fn learn(&self, model: &str, estimate: u64, reported: u64) {
        self.0
            .lock()
            .expect("prompt counts lock")
            .learn(model, estimate, reported);
    }
}

/// What a request may spend, decided before it is sent.
#[derive(Debug, Default)]
pub struct QuotaPlan {
    /// Its price, when the model is priced.
    pub pricing: Option<Pricing>,
    /// The quota held for it.
    pub hold: Option<Hold>,
    /// `max_tokens` to send upstream (the body field, the value), when the
    /// output must be bounded to what was held.
    pub cap: Option<(&'static str, u64)>,
}

/// The field a request names its output bound with, and its value.
fn asked_output(body: &Value) -> (&'static str, Option<u64>) {
    for field in ["max_completion_tokens", "max_tokens"] {
        if let Some(n) = body.get(field).and_then(Value::as_u64) {
            return (field, Some(n));
        }
    }
    ("max_tokens", None)
}

/// What a priced request asks to hold, worked out before it is sent.
pub struct QuotaAsk {
    pricing: Pricing,
    /// The model it is priced by.
    model: String,
    /// The prompt's tokens on the safe side.
    prompt: u64,
    /// The output bound's field, and the value the client gave.
    field: &'static str,
    asked: Option<u64>,
    /// The output it may produce at most.
    allowance: u64,
    /// What it can cost at most.
    full: i64,
    ask: Ask,
}

/// What the request can cost at most, priced by `model`; `None` when the model
/// is free, and then nothing is held.
pub fn ask(
    state: &AppState,
    group: &str,
    model: &str,
    body: &Value,
    prompt_estimate: u64,
) -> Option<QuotaAsk> {
    let price = state.prices.price(model)?;
    let pricing = Pricing {
        price,
        multiplier: state.prices.multiplier(group),
    };
    let prompt = state.prompt_counts.safe(model, prompt_estimate);
    let (field, asked) = asked_output(body);
    let allowance = price.output_allowance(asked);
    let full = pricing.cost(prompt, allowance);
    let ask = match state.prices.quota_policy(group) {
        QuotaPolicy::Clamp => Ask {
            full,
            min: pricing.cost(prompt, 1),
        },
        QuotaPolicy::Refuse => Ask { full, min: full },
    };
    Some(QuotaAsk {
        pricing,
        model: model.to_string(),
        prompt,
        field,
        asked,
        allowance,
        full,
        ask,
    })
}

impl QuotaAsk {
    /// Send the reservation: it is on its way when this returns, so the
    /// request can join the key queue meanwhile.
    pub fn send(&self, state: &AppState, token: &TokenInfo) -> PendingHold {
        PendingHold::ask(&state.ledger, token.user_id, Some(token.id), self.ask)
    }

    /// Wait for the hold sent by [`QuotaAsk::send`], until `deadline`. A place
    /// in the key queue taken meanwhile (`queued`) is given back if the quota
    /// has to wait for the account's requests in flight: a key's slot is not
    /// kept idle for that long.
    pub async fn held(
        self,
        mut pending: PendingHold,
        queued: &mut Option<Ticket>,
        deadline: Instant,
    ) -> Result<QuotaPlan, RelayError> {
        let QuotaAsk {
            pricing,
            model,
            prompt,
            field,
            asked,
            allowance,
            full,
            ..
        } = self;
        let short = |reason: String| RelayError::InsufficientQuota {
            model: model.clone(),
            reason,
        };
        let answer = async {
            match pending.answer_unless_parked().await {
                Some(answer) => answer,
                None => {
                    *queued = None;
                    pending.held().await
                }
            }
        };
        let held = tokio::time::timeout_at(deadline.into(), answer)
            .await
            .map_err(|_| {
                short(
                    "the quota left is held by this account's requests in flight and none settled in time; \
                 retry when they finish"
                        .into(),
                )
            })?;
        let hold = match held {
            Ok(hold) => hold,
            Err(Reserved::Short(e)) => return Err(short(e.to_string())),
            Err(Reserved::Unavailable(e)) => {
                return Err(RelayError::NoKeys {
                    model,
                    reason: format!("quota could not be checked: {e}"),
                })
            }
            Err(Reserved::Shutdown) => return Err(RelayError::ShuttingDown),
        };
        let granted = hold.granted();
        // An account with a limit gets an answer no longer than what it holds for.
        let cap = if granted.amount < full {
            let affordable = affordable_output(granted.amount, prompt, pricing.price, pricing.multiplier);
            Some((field, affordable.min(allowance)))
        } else if granted.limited && asked.is_none() {
            Some((field, allowance))
        } else {
            None
        };
        Ok(QuotaPlan {
            pricing: Some(pricing),
            hold: Some(hold),
            cap,
        })
    }
}
