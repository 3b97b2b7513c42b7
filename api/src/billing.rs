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

/// A model's price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Quota units per million prompt tokens.
    pub input: i64,
    /// Quota units per million completion tokens.
    pub output: i64,
}

/// The cost of a request, rounded up.
pub fn cost(prompt_tokens: u64, completion_tokens: u64, price: Price, multiplier_permille: u32) -> i64 {
    let raw = prompt_tokens as i128 * price.input as i128 + completion_tokens as i128 * price.output as i128;
    let scaled = raw * multiplier_permille as i128;
    let divisor: i128 = 1_000_000 * 1000;
    ((scaled + divisor - 1) / divisor) as i64
}

/// Prices and group multipliers, in memory; the `/api` handlers that change
/// them write the database and this in the same step.
#[derive(Clone, Debug, Default)]
pub struct PriceBook {
    prices: Arc<RwLock<HashMap<String, Price>>>,
    groups: Arc<RwLock<HashMap<String, u32>>>,
    weights: Arc<RwLock<HashMap<String, u32>>>,
}

impl PriceBook {
    /// Load prices and multipliers.
    pub async fn load(db: &DatabaseConnection) -> anyhow::Result<PriceBook> {
        let book = PriceBook::default();
        for p in model_prices::Entity::find().all(db).await? {
            book.set_price(
                &p.model,
                Some(Price {
                    input: p.input_price,
                    output: p.output_price,
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
                    output: 1
                },
                5000
            ) > 0
        );
    }
}
