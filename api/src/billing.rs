//! Prices and cost. Prices are per million tokens, in quota units; by default
//! 1,000,000 quota units = 1 USD, so a model at $0.28 per million input tokens
//! is priced `input = 280000`. Group multipliers are in permille (1000 = ×1).
//! All arithmetic is integer; a cost is rounded up to the next unit.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sea_orm::{DatabaseConnection, EntityTrait};
use serde::{Deserialize, Serialize};
use sluice_entity::{model_prices, settings};
use utoipa::ToSchema;

use crate::error::ApiError;

/// Settings key holding the group multipliers (JSON object group → permille).
pub const GROUP_MULTIPLIERS_KEY: &str = "group_multipliers";

/// Settings key holding the groups' shares of a busy pool (JSON object group → weight).
pub const GROUP_WEIGHTS_KEY: &str = "group_weights";

/// Settings key holding each group's choice when quota runs short (JSON object group → policy).
pub const GROUP_QUOTA_POLICIES_KEY: &str = "group_quota_policies";

/// What happens to a request whose full output allowance the quota left cannot pay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPolicy {
    /// Send it with `max_tokens` lowered to what the quota pays for: the answer
    /// may stop early (`finish_reason: "length"`). The default.
    #[default]
    Clamp,
    /// Refuse it with `insufficient_quota`.
    Refuse,
}

/// Quota units per US dollar (documented default conversion).
pub const UNITS_PER_USD: i64 = 1_000_000;

/// The largest quota any account or token may hold: 10^15 units (a billion
/// dollars at the default rate). Far below `i64::MAX`, so sums never overflow
/// (SQLite would silently turn an overflowing integer into a float).
pub const MAX_QUOTA: i64 = 1_000_000_000_000_000;

/// The largest price per million tokens: 10^12 units ($1M per million tokens).
pub const MAX_PRICE: i64 = 1_000_000_000_000;

/// An amount of quota that passed the bounds: 0 ..= [`MAX_QUOTA`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota(i64);

impl Quota {
    /// Check `n` (named `what` in the error).
    pub fn parse(n: i64, what: &'static str) -> Result<Quota, ApiError> {
        if (0..=MAX_QUOTA).contains(&n) {
            Ok(Quota(n))
        } else {
            Err(ApiError::invalid(
                what,
                format!("{what} must be between 0 and {MAX_QUOTA}"),
            ))
        }
    }

    /// The units.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Completion tokens a request that names no `max_tokens` reserves quota for,
/// when its model sets no allowance of its own: enough for a long answer.
pub const DEFAULT_OUTPUT_ALLOWANCE: u32 = 4096;

/// A model's price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Quota units per million prompt tokens.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub input: i64,
    /// Quota units per million completion tokens.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub output: i64,
    /// Completion tokens reserved for a request that names no `max_tokens`
    /// (1–1000000; absent: 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_output_tokens: Option<u32>,
}

impl Price {
    /// The completion tokens a request reserves quota for: its own `max_tokens`,
    /// or the model's allowance.
    pub fn output_allowance(&self, asked: Option<u64>) -> u64 {
        asked.unwrap_or_else(|| u64::from(self.max_output_tokens.unwrap_or(DEFAULT_OUTPUT_ALLOWANCE)))
    }
}

/// The cost of a request, rounded up.
pub fn cost(prompt_tokens: u64, completion_tokens: u64, price: Price, multiplier_permille: u32) -> i64 {
    let raw = prompt_tokens as i128 * price.input as i128 + completion_tokens as i128 * price.output as i128;
    let scaled = raw * multiplier_permille as i128;
    let divisor: i128 = 1_000_000 * 1000;
    ((scaled + divisor - 1) / divisor) as i64
}

/// How many completion tokens `available` quota units pay for after a prompt of
/// `prompt_tokens`, at this price: the largest `c` with `cost(prompt, c) <= available`.
pub fn affordable_output(available: i64, prompt_tokens: u64, price: Price, multiplier_permille: u32) -> u64 {
    let budget = i128::from(available) * 1_000_000_000;
    let prompt = prompt_tokens as i128 * i128::from(price.input) * i128::from(multiplier_permille);
    let per_token = i128::from(price.output) * i128::from(multiplier_permille);
    if budget < prompt {
        return 0;
    }
    if per_token == 0 {
        return u64::MAX;
    }
    u64::try_from((budget - prompt) / per_token).unwrap_or(u64::MAX)
}

/// Prices and group multipliers, in memory; the `/api` handlers that change
/// them write the database and this in the same step.
#[derive(Clone, Debug, Default)]
pub struct PriceBook {
    prices: Arc<RwLock<HashMap<String, Price>>>,
    groups: Arc<RwLock<HashMap<String, u32>>>,
    weights: Arc<RwLock<HashMap<String, u32>>>,
    policies: Arc<RwLock<HashMap<String, QuotaPolicy>>>,
}

impl PriceBook {
    /// Replace everything with what the database holds now (another replica
    /// changed something).
    pub async fn reload(&self, db: &DatabaseConnection) -> anyhow::Result<()> {
        let fresh = PriceBook::load(db).await?;
        fn take<T>(lock: &RwLock<HashMap<String, T>>) -> HashMap<String, T> {
            std::mem::take(&mut *lock.write().expect("price lock"))
        }
        *self.prices.write().expect("price lock") = take(&fresh.prices);
        *self.groups.write().expect("price lock") = take(&fresh.groups);
        *self.weights.write().expect("price lock") = take(&fresh.weights);
        *self.policies.write().expect("price lock") = take(&fresh.policies);
        Ok(())
    }

    /// Load prices and multipliers.
    pub async fn load(db: &DatabaseConnection) -> anyhow::Result<PriceBook> {
        let book = PriceBook::default();
        for p in model_prices::Entity::find().all(db).await? {
            book.set_price(
                &p.model,
                Some(Price {
                    input: p.input_price,
                    output: p.output_price,
                    max_output_tokens: p.max_output_tokens.and_then(|n| u32::try_from(n).ok()),
                }),
            );
        }
        if let Some(row) = settings::Entity::find_by_id(GROUP_MULTIPLIERS_KEY.to_string())
            .one(db)
            .await?
        {
            *book.groups.write().expect("price lock") = serde_json::from_str(&row.value)?;
        }
        if let Some(row) = settings::Entity::find_by_id(GROUP_WEIGHTS_KEY.to_string())
            .one(db)
            .await?
        {
            *book.weights.write().expect("price lock") = serde_json::from_str(&row.value)?;
        }
        if let Some(row) = settings::Entity::find_by_id(GROUP_QUOTA_POLICIES_KEY.to_string())
            .one(db)
            .await?
        {
            *book.policies.write().expect("price lock") = serde_json::from_str(&row.value)?;
        }
        Ok(book)
    }

    /// Set or remove a model's price.
    pub fn set_price(&self, model: &str, price: Option<Price>) {
        let mut prices = self.prices.write().expect("price lock");
        match price {
            Some(p) => prices.insert(model.to_string(), p),
            None => prices.remove(model),
        };
    }

    /// A model's price; `None` = free.
    pub fn price(&self, model: &str) -> Option<Price> {
        self.prices.read().expect("price lock").get(model).copied()
    }

    /// Every price.
    pub fn prices(&self) -> HashMap<String, Price> {
        self.prices.read().expect("price lock").clone()
    }

    /// Replace the group multipliers.
    pub fn set_groups(&self, groups: HashMap<String, u32>) {
        *self.groups.write().expect("price lock") = groups;
    }

    /// Every group multiplier.
    pub fn groups(&self) -> HashMap<String, u32> {
        self.groups.read().expect("price lock").clone()
    }

    /// Replace the group weights.
    pub fn set_weights(&self, weights: HashMap<String, u32>) {
        *self.weights.write().expect("price lock") = weights;
    }

    /// Every group weight that is set.
    pub fn weights(&self) -> HashMap<String, u32> {
        self.weights.read().expect("price lock").clone()
    }

    /// Replace the groups' quota policies.
    pub fn set_policies(&self, policies: HashMap<String, QuotaPolicy>) {
        *self.policies.write().expect("price lock") = policies;
    }

    /// Every quota policy that is set.
    pub fn policies(&self) -> HashMap<String, QuotaPolicy> {
        self.policies.read().expect("price lock").clone()
    }

    /// A group's quota policy (clamp when not set).
    pub fn quota_policy(&self, group: &str) -> QuotaPolicy {
        self.policies
            .read()
            .expect("price lock")
            .get(group)
            .copied()
            .unwrap_or_default()
    }

    /// A group's share of a busy pool against other groups' users (1 when not set).
    pub fn weight(&self, group: &str) -> u32 {
        self.weights
            .read()
            .expect("price lock")
            .get(group)
            .copied()
            .unwrap_or(1)
    }

    /// A group's multiplier in permille (1000 when not set).
    pub fn multiplier(&self, group: &str) -> u32 {
        self.groups
            .read()
            .expect("price lock")
            .get(group)
            .copied()
            .unwrap_or(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_exact_integer_arithmetic_rounded_up() {
        let p = Price {
            input: 280_000,
            output: 1_100_000,
            max_output_tokens: None,
        };
        // 1000 × 0.28 + 500 × 1.1 = 830 units.
        assert_eq!(cost(1000, 500, p, 1000), 830);
        // A 0.8 multiplier: 664.
        assert_eq!(cost(1000, 500, p, 800), 664);
        // One token at 0.28 units still costs one unit.
        assert_eq!(cost(1, 0, p, 1000), 1);
        assert_eq!(cost(0, 0, p, 1000), 0);
        // No overflow on absurd inputs.
        assert!(
            cost(
                u32::MAX as u64,
                u32::MAX as u64,
                Price {
                    input: i64::MAX / 4,
                    output: 1,
                    max_output_tokens: None,
                },
                5000
            ) > 0
        );
    }

    #[test]
    fn what_is_left_pays_for_a_whole_number_of_completion_tokens() {
        let p = Price {
            input: 1_000_000,
            output: 2_000_000,
            max_output_tokens: None,
        };
        // 1 unit a prompt token, 2 a completion token: 100 left after a 40-token
        // prompt pays for 30 tokens.
        assert_eq!(affordable_output(100, 40, p, 1000), 30);
        assert!(cost(40, 30, p, 1000) <= 100 && cost(40, 31, p, 1000) > 100);
        assert_eq!(affordable_output(39, 40, p, 1000), 0, "not even the prompt");
        // A 20 % group discount stretches it.
        assert_eq!(affordable_output(100, 40, p, 800), 42);
        assert!(cost(40, 42, p, 800) <= 100 && cost(40, 43, p, 800) > 100);
        let free_output = Price { output: 0, ..p };
        assert_eq!(affordable_output(100, 40, free_output, 1000), u64::MAX);
        assert_eq!(p.output_allowance(None), 4096);
        assert_eq!(
            Price {
                max_output_tokens: Some(512),
                ..p
            }
            .output_allowance(None),
            512
        );
        assert_eq!(p.output_allowance(Some(16)), 16);
    }
}
