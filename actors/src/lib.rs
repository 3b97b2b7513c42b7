//! The actors at Sluice's heart: a `KeyActor` per upstream key owning its
//! budget, the `Router` that queues requests and picks the key that can serve
//! soonest, the `Ledger` that settles quota and writes usage logs in batches,
//! and the `Mailer` that sends invite and password-reset mails.

pub mod balances;
pub mod budget;
pub mod calibration;
pub mod courier;
pub mod key;
pub mod ledger;
pub mod mailer;
pub mod permit;
pub mod prober;
pub mod quota_outage;
pub mod quota_store;
pub mod redis_link;
pub mod router;
pub mod scheduler;
pub mod shared;
pub mod window;

pub use budget::{BudgetPolicy, Limits, Readiness};
pub use key::{ApiKey, KeySnapshot, KeySpec, Outcome};
pub use ledger::{Ledger, UsageRecord};
pub use mailer::Mailer;
pub use permit::{Permit, Ticket};
pub use router::{route, Route, RouteError, Router, Tenant};
