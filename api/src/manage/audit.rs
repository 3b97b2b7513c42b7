//! `/api/audit` (admins and root): the audit log — who changed users, roles,
//! quotas, channels, keys, prices, groups, invites, fallbacks and tokens, when,
//! from where, and what each change did — listed newest first, filtered, and
//! exported as CSV.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_entity::audit_log;
use utoipa::{IntoParams, ToSchema};

use super::csv_download::{csv_download, spreadsheet_text as text, CHUNK};
use super::logs::TimeRange;
use super::{page_limit, Page};
use crate::audit::Action;
use crate::auth::{AuthContext, Role};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// `/api/audit` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(list))
        .route("/audit/export", web::get().to(export));
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, export), components(schemas(AuditView)))]
pub struct Doc;

/// One change, as the API shows it.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct AuditView {
    /// Id; later changes have larger ids.
    pub id: i64,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// Who made it.
    pub actor_id: i64,
    /// Their username then (kept if the account goes).
    pub actor_username: String,
    /// Their role then.
    pub actor_role: Role,
    /// The address they came from (through `trusted_proxies`, as for logins).
    pub address: Option<String>,
    /// What they did, such as `user.email`, `channel.update` or `key.delete`.
    pub action: String,
    /// What it was done to: `user`, `channel`, `key`, `token`, `price`, `group`, `invite` or `fallback`.
    pub target_type: String,
    /// Its id (a model's or a group's name for prices and groups).
    pub target_id: String,
    /// Its name, or a key's mask.
    pub target_label: String,
    /// For a change, the fields that changed as they were; for a deletion, the whole
    /// thing. Secrets masked as the API shows them.
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// For a change, the fields that changed as they are now; for a creation, the
    /// whole thing; for a test, its result. Secrets masked.
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
    /// The `X-Request-Id` the request carried, if any.
    pub request_id: Option<String>,
}

impl From<&audit_log::Model> for AuditView {
    fn from(r: &audit_log::Model) -> Self {
        // Written by `audit::record` from JSON values, so they parse back.
        let json = |s: &Option<String>| s.as_deref().and_then(|s| serde_json::from_str(s).ok());
        AuditView {
            id: r.id,
            at: r.at,
            actor_id: r.actor_id,
            actor_username: r.actor_username.clone(),
            actor_role: Role::parse(&r.actor_role).unwrap_or(Role::User),
            address: r.address.clone(),
            action: r.action.clone(),
            target_type: r.target_type.clone(),
            target_id: r.target_id.clone(),
            target_label: r.target_label.clone(),
            before: json(&r.before_json),
            after: json(&r.after_json),
            request_id: r.request_id.clone(),
        }
    }
}

/// Declares the query of one `/api/audit` route: the filters both share, then its
/// own fields (serde cannot combine `flatten` with `deny_unknown_fields`, and a
/// misspelt filter must be an error, not a wider result).
macro_rules! audit_query {
    ($(#[$meta:meta])* $name:ident { $($(#[$field_meta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Deserialize, IntoParams)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Changes made at or after this time (RFC 3339, such as `2026-11-25T00:00:00Z`).
            #[param(format = DateTime)]
            pub from: Option<String>,
            /// Changes made before this time (RFC 3339; exclusive).
            #[param(format = DateTime)]
            pub to: Option<String>,
            /// Changes made by the account with this id.
            pub actor_id: Option<i64>,
            /// Changes made by the account with this username (as it was then).
            pub actor: Option<String>,
            /// An action (`user.email`) or a family of them (`user` finds every `user.…`).
            pub action: Option<String>,
            /// Changes to this kind of thing: `user`, `channel`, `key`, `token`, `price`, `group`, `invite`, `fallback`.
            pub target_type: Option<String>,
            /// Changes to the thing with this id (or name, for prices and groups).
            pub target_id: Option<String>,
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl $name {
            /// The filters, checked.
            fn filter(&self) -> Result<AuditFilter, ApiError> {
                Ok(AuditFilter {
                    range: TimeRange::parse(self.from.as_deref(), self.to.as_deref())?,
                    actor_id: self.actor_id,
                    actor: self.actor.as_deref().map(|s| parse_text("actor", s, 64)).transpose()?,
                    actions: self.action.as_deref().map(parse_action).transpose()?,
                    target_type: self
                        .target_type
                        .as_deref()
                        .map(|s| parse_text("target_type", s, 32))
                        .transpose()?,
                    target_id: self
                        .target_id
                        .as_deref()
                        .map(|s| parse_text("target_id", s, 128))
                        .transpose()?,
                })
            }
        }
    };
}

audit_query! {
    /// Filters and paging for `GET /api/audit`.
    ListQuery {
        /// Return changes older than this cursor (from `next_cursor`).
        cursor: Option<i64>,
        /// At most this many changes (1–500, default 100).
        limit: Option<u64>,
    }
}

audit_query! {
    /// Filters for `GET /api/audit/export`.
    ExportQuery {}
}

/// Which entries a caller asked for, checked once at the edge.
#[derive(Clone, Debug)]
struct AuditFilter {
    range: TimeRange,
    actor_id: Option<i64>,
    actor: Option<String>,
    actions: Option<Vec<&'static str>>,
    target_type: Option<String>,
    target_id: Option<String>,
}

impl AuditFilter {
    fn condition(&self) -> Condition {
        use audit_log::Column as C;
        let mut all = Condition::all();
        if let Some(from) = self.range.from {
            all = all.add(C::At.gte(from));
        }
        if let Some(to) = self.range.to {
            all = all.add(C::At.lt(to));
        }
        if let Some(id) = self.actor_id {
            all = all.add(C::ActorId.eq(id));
        }
        if let Some(name) = &self.actor {
            all = all.add(C::ActorUsername.eq(name.as_str()));
        }
        if let Some(actions) = &self.actions {
            all = all.add(C::Action.is_in(actions.iter().copied()));
        }
        if let Some(kind) = &self.target_type {
            all = all.add(C::TargetType.eq(kind.as_str()));
        }
        if let Some(id) = &self.target_id {
            all = all.add(C::TargetId.eq(id.as_str()));
        }
        all
    }

    /// Up to `n` matching entries older than `before`, newest first.
    async fn page(
        &self,
        db: &DatabaseConnection,
        before: Option<i64>,
        n: u64,
    ) -> Result<Vec<audit_log::Model>, ApiError> {
        let mut query = audit_log::Entity::find()
            .filter(self.condition())
            .order_by_desc(audit_log::Column::Id)
            .limit(n);
        if let Some(before) = before {
            query = query.filter(audit_log::Column::Id.lt(before));
        }
        Ok(query.all(db).await?)
    }
}

/// The stored names an `action` filter selects; an unknown one is an error
/// naming the actions there are, not an empty list.
fn parse_action(s: &str) -> Result<Vec<&'static str>, ApiError> {
    let names = Action::matching(s);
    if names.is_empty() {
        let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        return Err(ApiError::BadRequest(format!(
            "no action is or starts with '{}'; actions: {}",
            s,
            known.join(", ")
        )));
    }
    Ok(names)
}

fn parse_text(name: &str, s: &str, max: usize) -> Result<String, ApiError> {
    // Counted as sent, blank as `config::is_blank` says: the document's pattern.
    if s.chars().all(crate::config::is_blank) || s.chars().count() > max {
        return Err(ApiError::BadRequest(format!(
            "{name} must be 1–{max} characters; leave it out to see every entry"
        )));
    }
    // PostgreSQL refuses a NUL in text outright; no stored name has control characters.
    if s.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "{name} must not contain control characters"
        )));
    }
    Ok(crate::config::trim_name(s).to_string())
}

/// List changes, newest first.
///
/// Admins and root. Every change an admin or root made (users, roles, quotas,
/// channels, keys, prices, groups, invites, tokens, fallback chains): who, from
/// which address, when, and the fields before and after, secrets masked. Filters
/// by time, actor, action or family, and target; paged with `cursor`.
#[utoipa::path(get, path = "/api/audit", tag = "audit", operation_id = "list_audit", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<AuditView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    auth: AuthContext,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let filter = q.filter()?;
    let limit = page_limit(q.limit)?;
    let rows = filter.page(&state.db, q.cursor, limit + 1).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |r| r.id, |r| AuditView::from(&r))))
}

/// The header row; [`cells`] writes the columns in this order.
const COLUMNS: [&str; 13] = [
    "id",
    "at",
    "actor_id",
    "actor_username",
    "actor_role",
    "address",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "before",
    "after",
    "request_id",
];

/// Download changes as CSV.
///
/// Admins and root. The entries `GET /api/audit` lists for the same filters, all
/// of them, newest first, streamed as `sluice-audit.csv`; `before` and `after`
/// are JSON in their cells.
#[utoipa::path(get, path = "/api/audit/export", tag = "audit", operation_id = "export_audit", params(ExportQuery), security(("bearer" = [])),
    responses(
        (status = 200, content_type = "text/csv", body = String,
            description = "A header row, then one row per change, as an attachment named sluice-audit.csv"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn export(
    state: web::Data<AppState>,
    auth: AuthContext,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let filter = q.filter()?;
    let db = state.db.clone();
    csv_download(
        "sluice-audit.csv",
        COLUMNS,
        cells,
        |r| r.id,
        move |before| {
            let (db, filter) = (db.clone(), filter.clone());
            async move { filter.page(&db, before, CHUNK).await }
        },
    )
    .await
}

/// One entry's cells, in [`COLUMNS`] order. Names, labels and JSON carry text
/// users chose, so each goes through the spreadsheet guard.
fn cells(r: &audit_log::Model) -> [String; 13] {
    let opt = |v: &Option<String>| v.as_deref().map(text).unwrap_or_default();
    [
        r.id.to_string(),
        r.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        r.actor_id.to_string(),
        text(&r.actor_username),
        text(&r.actor_role),
        opt(&r.address),
        text(&r.action),
        text(&r.target_type),
        text(&r.target_id),
        text(&r.target_label),
        opt(&r.before_json),
        opt(&r.after_json),
        opt(&r.request_id),
    ]
}
