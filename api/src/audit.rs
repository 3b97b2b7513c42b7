//! The audit log: who changed what, when, from where, and the state before and
//! after. Each write records one [`AuditEntry`] through [`record`], from the
//! handler that made it, once the write has succeeded (inside its transaction
//! when it has one), so a refused write leaves no trace. Before and after are
//! the API's own views of the thing (keys, header values and token keys
//! masked, password hashes absent), so the log never holds more than an admin
//! could read anyway.

use actix_web::HttpRequest;
use chrono::Utc;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde::Serialize;
use serde_json::Value;
use sluice_entity::{audit_log, users};

use crate::auth::{AuthContext, Role};
use crate::config::Settings;
use crate::error::ApiError;
use crate::relay::client_ip::client_ip;

macro_rules! actions {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// What an entry records, named `thing.verb` so a prefix (`user`) finds a family.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Action {
            $($(#[$doc])* $variant,)*
        }

        impl Action {
            /// Every action, in the order they are declared.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)*
                }
            }
        }
    };
}

actions! {
    /// An admin made an account.
    UserCreate = "user.create",
    /// Root made an admin account.
    AdminCreate = "admin.create",
    /// An account's group, limits or quota changed.
    UserUpdate = "user.update",
    /// Quota added to an account.
    UserTopUp = "user.top_up",
    /// An account switched off.
    UserDisable = "user.disable",
    /// An account switched back on.
    UserEnable = "user.enable",
    /// An account's role changed (root only).
    UserRole = "user.role",
    /// An account's mail address changed (the old address is told).
    UserEmail = "user.email",
    /// A password chosen through a mailed reset link.
    UserPasswordReset = "user.password_reset",
    /// A channel made.
    ChannelCreate = "channel.create",
    /// A channel changed.
    ChannelUpdate = "channel.update",
    /// A channel and its keys deleted.
    ChannelDelete = "channel.delete",
    /// Every key of a channel tested.
    ChannelTest = "channel.test",
    /// A provider key added.
    KeyCreate = "key.create",
    /// A key tuned, disabled or enabled.
    KeyUpdate = "key.update",
    /// A key deleted.
    KeyDelete = "key.delete",
    /// A key tested.
    KeyTest = "key.test",
    /// An `sk-` token made.
    TokenCreate = "token.create",
    /// A token changed.
    TokenUpdate = "token.update",
    /// A token deleted.
    TokenDelete = "token.delete",
    /// A model's price set.
    PriceSet = "price.set",
    /// A model's price removed.
    PriceDelete = "price.delete",
    /// A group's multiplier set.
    GroupMultiplier = "group.multiplier",
    /// A group's multiplier removed.
    GroupMultiplierDelete = "group.multiplier_delete",
    /// A group's weight set.
    GroupWeight = "group.weight",
    /// A group's quota policy set.
    GroupQuotaPolicy = "group.quota_policy",
    /// An invite sent.
    InviteCreate = "invite.create",
    /// An invite revoked.
    InviteRevoke = "invite.revoke",
    /// A fallback chain made.
    FallbackCreate = "fallback.create",
    /// A fallback chain changed.
    FallbackUpdate = "fallback.update",
    /// A fallback chain deleted.
    FallbackDelete = "fallback.delete",
}

impl Action {
    /// The stored names an `action` filter selects: the name itself, or every
    /// action of a family (`user` selects `user.create`, `user.email`…).
    pub fn matching(filter: &str) -> Vec<&'static str> {
        Action::ALL
            .iter()
            .map(|a| a.as_str())
            .filter(|name| {
                *name == filter
                    || name
                        .strip_prefix(filter)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            .collect()
    }

    /// Every value an `action` filter takes: each action, and each family
    /// (`user` for every `user.…`).
    pub fn filters() -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Action::ALL
            .iter()
            .flat_map(|a| [a.as_str(), a.as_str().split('.').next().unwrap_or_default()])
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// Who acted, and from where: an account in a live session.
#[derive(Clone, Debug)]
pub struct Actor {
    /// The account's id.
    pub user_id: i64,
    /// Its name when it acted (kept if the account is later renamed or gone).
    pub username: String,
    /// Its role when it acted.
    pub role: Role,
    /// The client's address, resolved through `trusted_proxies` like the login limiter's.
    pub address: Option<String>,
    /// The `X-Request-Id` a client or proxy sent, when it sent a sane one.
    pub request_id: Option<String>,
}

impl Actor {
    /// The caller of an `/api` request.
    pub fn new(auth: &AuthContext, req: &HttpRequest, settings: &Settings) -> Actor {
        Actor::account(&auth.user, auth.role, req, settings)
    }

    /// An account acting without a session (following a mailed link).
    pub fn account(user: &users::Model, role: Role, req: &HttpRequest, settings: &Settings) -> Actor {
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|id| (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_graphic()))
            .map(String::from);
        Actor {
            user_id: user.id,
            username: user.username.clone(),
            role,
            address: client_ip(req, &settings.relay.trusted_proxies).map(|ip| ip.to_string()),
            request_id,
        }
    }
}

/// What an entry is about.
#[derive(Clone, Debug)]
pub struct Target {
    kind: &'static str,
    id: String,
    label: String,
}

impl Target {
    /// A thing of `kind` (`user`, `channel`…), by id (or name, for things named
    /// rather than numbered) and the label a person knows it by.
    pub fn new(kind: &'static str, id: impl ToString, label: impl Into<String>) -> Target {
        Target {
            kind,
            id: clip(id.to_string(), 128),
            label: clip(label.into(), 255),
        }
    }
}

/// One change, ready to record.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    action: Action,
    target: Target,
    before: Option<Value>,
    after: Option<Value>,
}

/// Fields that change on every write and say nothing about it.
const UNTOLD: &[&str] = &["updated_at"];

impl AuditEntry {
    /// Something made: its view afterwards.
    pub fn created(action: Action, target: Target, after: &impl Serialize) -> AuditEntry {
        AuditEntry {
            action,
            target,
            before: None,
            after: Some(view(after)),
        }
    }

    /// Something changed: only the fields that differ, as they were and as they are.
    pub fn changed(
        action: Action,
        target: Target,
        before: &impl Serialize,
        after: &impl Serialize,
    ) -> AuditEntry {
        let (before, after) = difference(view(before), view(after));
        AuditEntry {
            action,
            target,
            before: Some(before),
            after: Some(after),
        }
    }

    /// Something deleted: its view before.
    pub fn deleted(action: Action, target: Target, before: &impl Serialize) -> AuditEntry {
        AuditEntry {
            action,
            target,
            before: Some(view(before)),
            after: None,
        }
    }

    /// Something done that changes no stored view (a password reset).
    pub fn done(action: Action, target: Target) -> AuditEntry {
        AuditEntry {
            action,
            target,
            before: None,
            after: None,
        }
    }

    /// Something tried that changes no stored view (a key test): what came of it.
    pub fn outcome(action: Action, target: Target, outcome: &impl Serialize) -> AuditEntry {
        AuditEntry {
            action,
            target,
            before: None,
            after: Some(view(outcome)),
        }
    }
}

fn view(v: &impl Serialize) -> Value {
    // The API's views are plain structs and maps with string keys: they always serialise.
    serde_json::to_value(v).expect("an API view serialises")
}

/// The fields of two objects that differ (of anything else: both whole).
fn difference(before: Value, after: Value) -> (Value, Value) {
    match (before, after) {
        (Value::Object(mut before), Value::Object(mut after)) => {
            let same: Vec<String> = before
                .iter()
                .filter(|(k, v)| UNTOLD.contains(&k.as_str()) || after.get(k.as_str()) == Some(v))
                .map(|(k, _)| k.clone())
                .collect();
            for k in same.iter().map(String::as_str).chain(UNTOLD.iter().copied()) {
                before.remove(k);
                after.remove(k);
            }
            (Value::Object(before), Value::Object(after))
        }
        (before, after) => (before, after),
    }
}

fn clip(mut s: String, max_chars: usize) -> String {
    if let Some((cut, _)) = s.char_indices().nth(max_chars) {
        s.truncate(cut);
    }
    s
}

/// Write one entry. Call it after the write succeeded, on the write's
/// transaction when it has one.
pub async fn record(db: &impl ConnectionTrait, actor: &Actor, entry: AuditEntry) -> Result<(), ApiError> {
    let json = |v: Option<Value>| v.map(|v| v.to_string());
    audit_log::Entity::insert(audit_log::ActiveModel {
        at: Set(Utc::now()),
        actor_id: Set(actor.user_id),
        actor_username: Set(actor.username.clone()),
        actor_role: Set(actor.role.as_str().into()),
        address: Set(actor.address.clone()),
        action: Set(entry.action.as_str().into()),
        target_type: Set(entry.target.kind.into()),
        target_id: Set(entry.target.id),
        target_label: Set(entry.target.label),
        before_json: Set(json(entry.before)),
        after_json: Set(json(entry.after)),
        request_id: Set(actor.request_id.clone()),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_family_prefix_selects_its_actions_and_only_those() {
        let users = Action::matching("user");
        assert!(users.contains(&"user.email") && users.contains(&"user.top_up"));
        assert!(!users.contains(&"admin.create"));
        // Exactly the values the document lists for the filter.
        assert!(Action::matching("user.").is_empty());
        assert!(Action::filters().contains(&"user") && Action::filters().contains(&"user.email"));
        assert!(Action::filters().iter().all(|f| !Action::matching(f).is_empty()));
        assert_eq!(Action::matching("group.multiplier"), vec!["group.multiplier"]);
        assert!(Action::matching("use").is_empty());
        assert!(Action::matching("user.e").is_empty());
    }

    #[test]
    fn a_change_keeps_only_the_fields_that_differ() {
        let (before, after) = difference(
            json!({"id": 1, "quota": 0, "group": "default", "updated_at": "a"}),
            json!({"id": 1, "quota": 500, "group": "default", "updated_at": "b"}),
        );
        assert_eq!(before, json!({"quota": 0}));
        assert_eq!(after, json!({"quota": 500}));
    }

    #[test]
    fn labels_are_cut_on_a_character_boundary() {
        assert_eq!(clip("雪".repeat(300), 255).chars().count(), 255);
        assert_eq!(clip("abc".into(), 255), "abc");
    }
}
