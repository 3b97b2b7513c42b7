//! The actors at Sluice's heart: a `KeyActor` per upstream key owning its
//! budget, the `Router` that queues requests and picks the key that can serve
//! soonest, and the `Ledger` that settles quota and writes usage logs in batches.

pub mod balances;
pub mod budget;
pub mod key;
pub mod ledger;
pub mod router;

pub use budget::{BudgetPolicy, Limits, Readiness};
pub use key::{ApiKey, KeySnapshot, KeySpec, Outcome};
pub use ledger::{Ledger, UsageRecord};
pub use router::{Permit, Route, RouteError, Router};
