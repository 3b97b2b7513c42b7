//! What the derived document leaves out and a client generator or linter needs:
//! the server it lives on, its tags described, public operations marked public
//! (`security: []`), the statuses every operation of a kind can give, page
//! schemas that refer to their item schema instead of copying it, and the
//! limits the server enforces on `/api` input that the Rust types cannot carry
//! (lengths, patterns, ranges), each beside the code that enforces it. Works on
//! the JSON form, after the parts are merged.

use serde_json::{json, Map, Value};

use crate::billing::MAX_QUOTA;
use crate::config::{MAX_FALLBACK_STEPS, MAX_FALLBACK_WAIT_SECS, MAX_LIMIT};
use crate::manage::{PAGE_DEFAULT, PAGE_MAX};

/// Control characters (`char::is_control`), as a regex class body.
macro_rules! control {
    () => {
        r"\x00-\x1F\x7F-\x9F"
    };
}

/// Blank characters (`config::is_blank`: whitespace, controls, the BOM), as a
/// regex class body. Spelled out: `\s` means different things to different
/// regex engines (and to Rust).
macro_rules! blank {
    () => {
        r"\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\uFEFF"
    };
}

/// A name or filter value as the server takes it (`config::is_plain_name`,
/// `manage::logs::parse_model`): not all blank, no control characters.
const NO_CONTROL: &str = concat!("^[^", control!(), "]*[^", blank!(), "][^", control!(), "]*$");

/// A new password (`auth::password::NewPassword::parse`): anything but one
/// character repeated (the length is on the fields themselves).
const ONE_CHARACTER_REPEATED_NOT: &str = r"^(?!([\s\S])\1*$)";

/// One to many lines of keys (of 1–`catalog::keys::MAX_KEY_CHARS` characters),
/// as `catalog::keys::parse_key_lines` takes them.
macro_rules! key_lines {
    () => {
        concat!(
            r"(?:[ \t\r]*\n)*[ \t\r]*[^",
            blank!(),
            r"]{1,1024}[ \t\r]*(?:\n[ \t\r]*(?:[^",
            blank!(),
            r"]{1,1024}[ \t\r]*)?)*"
        )
    };
}

/// At least one key (`POST /api/channels/{id}/keys`).
const KEY_LINES: &str = concat!("^", key_lines!(), "$");

/// Keys or nothing (`POST /api/channels`: a channel may start without keys).
const KEY_LINES_OR_NONE: &str = concat!(r"^(?:[ \t\r\n]*|", key_lines!(), ")$");

/// An IPv4 address or network (`catalog::tokens::parse_networks`).
const IPV4_NET: &str =
    r"^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(/(3[0-2]|[12]?\d))?$";

/// An IPv6 address (without an embedded IPv4 part) or network.
const IPV6_NET: &str = concat!(
    r"^(([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,7}:|",
    r"([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}|",
    r"([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}|([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}|",
    r"([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}|[0-9a-fA-F]{1,4}:(:[0-9a-fA-F]{1,4}){1,6}|",
    r":((:[0-9a-fA-F]{1,4}){1,7}|:))(/(12[0-8]|1[01]\d|[1-9]?\d))?$"
);

/// Rules the server enforces on request fields, by field name (in any request
/// body, unless a schema is named), as JSON Schema keywords. The code that
/// enforces each is named beside it; keep the two together.
fn field_rules() -> Vec<(Option<&'static str>, &'static str, Value)> {
    // config::is_plain_name.
    let model = json!({ "minLength": 1, "maxLength": 128, "pattern": NO_CONTROL });
    let limit = json!({ "minimum": 0, "maximum": MAX_LIMIT });
    vec![
        (None, "name", model.clone()),
        // catalog::users::parse_email.
        (None, "email", json!({ "format": "email", "maxLength": 255 })),
        // catalog::users::parse_group.
        (None, "group", json!({ "pattern": "^[A-Za-z0-9_-]{1,64}$" })),
        // config::ChannelDecl::validate.
        (
            None,
            "groups",
            json!({ "items": { "minLength": 1, "maxLength": 64 } }),
        ),
        // auth::password::NewPassword::parse: not one character repeated (the
        // length is on the fields themselves).
        (
            Some("CreateUser"),
            "password",
            json!({ "pattern": ONE_CHARACTER_REPEATED_NOT }),
        ),
        (
            Some("AcceptInvite"),
            "password",
            json!({ "pattern": ONE_CHARACTER_REPEATED_NOT }),
        ),
        (
            None,
            "new_password",
            json!({ "pattern": ONE_CHARACTER_REPEATED_NOT }),
        ),
        // config::MAX_LIMIT, checked wherever a limit is set.
        (None, "rpm", limit.clone()),
        (None, "tpm", limit.clone()),
        (None, "max_concurrency", limit),
        // billing::Quota::parse.
        (None, "quota", json!({ "minimum": 0, "maximum": MAX_QUOTA })),
        // catalog::tokens::parse_networks.
        (
            None,
            "ip_allow",
            json!({ "minItems": 1, "items": { "anyOf": [{ "pattern": IPV4_NET }, { "pattern": IPV6_NET }] } }),
        ),
        (
            None,
            "models",
            json!({ "minItems": 1, "uniqueItems": true, "items": model }),
        ),
        (
            Some("CreateFallback"),
            "models",
            json!({ "maxItems": MAX_FALLBACK_STEPS }),
        ),
        (
            Some("UpdateFallback"),
            "models",
            json!({ "maxItems": MAX_FALLBACK_STEPS }),
        ),
        (None, "wait_secs", json!({ "maximum": MAX_FALLBACK_WAIT_SECS })),
        // config::ChannelDecl::validate.
        (
            None,
            "base_url",
            json!({ "format": "uri", "pattern": "^https?://[^\\s]+$", "maxLength": 512 }),
        ),
        (None, "kind", json!({ "enum": ["openai", null] })),
        (
            Some("CreateChannel"),
            "weight",
            json!({ "minimum": 1, "maximum": 1000 }),
        ),
        (
            Some("UpdateChannel"),
            "weight",
            json!({ "minimum": 1, "maximum": 1000 }),
        ),
        // catalog::keys: one key per line, at least one.
        (Some("AddKeys"), "keys", json!({ "pattern": KEY_LINES })),
        (
            Some("CreateChannel"),
            "keys",
            json!({ "pattern": KEY_LINES_OR_NONE }),
        ),
    ]
}

/// Every tag an operation uses, with what it groups.
const TAGS: &[(&str, &str)] = &[
    (
        "auth",
        "Sessions: sign in and out, refresh, change or reset a password.",
    ),
    (
        "invites",
        "Mail invitations: send, list, revoke, inspect and accept.",
    ),
    (
        "users",
        "Accounts, roles, quotas and groups (admins), and your own account.",
    ),
    (
        "tokens",
        "The `sk-` keys clients send to `/v1`, with their models, networks, limits and quota.",
    ),
    (
        "logs",
        "Usage: every request with its tokens and cost, totals, time series and CSV export.",
    ),
    (
        "billing",
        "Model prices, output allowances, and each group's multiplier, weight and quota policy.",
    ),
    (
        "channels",
        "Upstream providers and their keys, limits, tests and live state; fallback chains.",
    ),
    (
        "relay",
        "The OpenAI- and Anthropic-compatible endpoints agents call with an `sk-` token.",
    ),
    (
        "audit",
        "Who changed what, when and from where: every admin and root change, before and after.",
    ),
];

/// Complete the merged document (see the module comment).
pub fn complete(doc: &mut Value) {
    doc["info"]["contact"] = json!({ "name": "The operators of this Sluice instance" });
    doc["servers"] = json!([{
        "url": "/",
        "description": "This Sluice instance (the document is served by it)"
    }]);
    doc["tags"] = TAGS
        .iter()
        .map(|(name, description)| json!({ "name": name, "description": description }))
        .collect();
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            if let Some(op) = op.as_object_mut() {
                complete_operation(path, op);
            }
        }
    }
    refer_page_items(doc);
    constrain_request_fields(doc);
}

/// Apply [`field_rules`] to the schemas `/api` request bodies use (`/v1`
/// bodies are the providers' to check).
fn constrain_request_fields(doc: &mut Value) {
    let mut bodies: Vec<String> = Vec::new();
    let api = doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(path, _)| path.starts_with("/api/"));
    for item in api.map(|(_, item)| item) {
        for op in item.as_object().into_iter().flat_map(|i| i.values()) {
            if let Some(name) = op
                .pointer("/requestBody/content/application~1json/schema/$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit('/').next())
            {
                bodies.push(name.to_string());
            }
        }
    }
    let rules = field_rules();
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for name in bodies {
        let Some(properties) = schemas
            .get_mut(&name)
            .and_then(|s| s.get_mut("properties"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (only, field, keywords) in &rules {
            if only.is_some_and(|o| o != name) {
                continue;
            }
            if let Some(property) = properties.get_mut(*field) {
                merge(property, keywords);
            }
        }
    }
}

/// Add `keywords` to a property schema, replacing the derived ones (an
/// unsigned field's `minimum: 0`); `items` merges into the item schema.
fn merge(property: &mut Value, keywords: &Value) {
    let Some(target) = property.as_object_mut() else {
        return;
    };
    for (key, value) in keywords.as_object().into_iter().flatten() {
        if key == "items" {
            if let Some(items) = target.get_mut("items") {
                merge(items, value);
            }
            continue;
        }
        // `enum` with null only where the field may be null.
        if key == "enum" {
            let nullable = target
                .get("type")
                .and_then(Value::as_array)
                .is_some_and(|t| t.iter().any(|t| t == "null"));
            let values: Vec<Value> = value
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| nullable || !v.is_null())
                .cloned()
                .collect();
            target.insert("enum".into(), Value::Array(values));
            continue;
        }
        target.insert(key.clone(), value.clone());
    }
}

fn complete_operation(path: &str, op: &mut Map<String, Value>) {
    // An operation that lists no security requirement is public; say so, or
    // the document-wide default (none here) would be assumed by some tools.
    let security = op.entry("security").or_insert_with(|| json!([]));
    let schemes: Vec<String> = security
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|r| r.keys().cloned())
        .collect();
    let has_body = op.contains_key("requestBody");
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(description));
    };
    // actix refuses a malformed path, query or body before any handler runs.
    add("400", "Malformed input; nothing changed");
    if !schemes.is_empty() {
        add("401", "Missing, invalid or expired credentials");
    }
    if schemes.iter().any(|s| s == "bearer") && path != "/api/auth/password" {
        add(
            "403",
            "Not allowed for this caller, or `password_change_required`: the account must change its password first",
        );
    }
    if schemes.iter().any(|s| s == "sk_token") {
        add(
            "403",
            "`ip_not_allowed`: the token may not be used from this address; or the token may not use this model",
        );
    }
    if has_body {
        add("413", "Request body too large");
        if path.starts_with("/v1/") {
            add("408", "The request body did not arrive in time");
        }
    }
    for parameter in op
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let rule = match (parameter["in"].as_str(), parameter["name"].as_str()) {
            // catalog::users::parse_group; manage::prices::parse_model.
            (Some("path"), Some("group")) => json!({ "pattern": "^[A-Za-z0-9_-]{1,64}$" }),
            (Some("path"), Some("model")) => {
                json!({ "minLength": 1, "maxLength": 128, "pattern": NO_CONTROL })
            }
            // Routes take decimal ids only (`{id:\d+}`).
            (Some("path"), Some("id")) => json!({ "minimum": 0 }),
            (Some("query"), name) => match name {
                // manage::page_limit.
                Some("limit") => json!({ "minimum": 1, "maximum": PAGE_MAX, "default": PAGE_DEFAULT }),
                // manage::logs::parse_model: not blank, no control characters.
                Some("model") => json!({ "pattern": NO_CONTROL }),
                // manage::logs::parse_status.
                Some("status") => json!({ "minimum": 100, "maximum": 599 }),
                // manage::key_state::stream.
                Some("interval_ms") => json!({ "minimum": 250, "maximum": 10_000, "default": 1000 }),
                // manage::audit: the filters of the audit log.
                Some("action") if path.starts_with("/api/audit") => {
                    json!({ "enum": crate::audit::Action::filters() })
                }
                Some("actor") if path.starts_with("/api/audit") => {
                    json!({ "maxLength": 64, "pattern": NO_CONTROL })
                }
                Some("target_type") => json!({ "maxLength": 32, "pattern": NO_CONTROL }),
                Some("target_id") => json!({ "maxLength": 128, "pattern": NO_CONTROL }),
                _ => continue,
            },
            _ => continue,
        };
        merge(&mut parameter["schema"], &rule);
    }
    let id = op
        .get("operationId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let responses = op["responses"].as_object_mut().expect("responses is an object");
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(description));
    };
    if matches!(
        id.as_str(),
        "accept_invite" | "inspect_invite" | "confirm_password_reset"
    ) {
        add(
            "404",
            "The link is not known: mistyped, revoked, or replaced by a newer one",
        );
        add("410", "The link was used already, or has expired");
    }
    match id.as_str() {
        "top_up_user" => add("409", "The quota would pass its limit"),
        "update_user" => add("409", "That mail address is taken"),
        _ => {}
    }
    let relational = ["/api/channels", "/api/fallbacks", "/api/keys/"];
    if has_body && relational.iter().any(|p| path.starts_with(p)) {
        add(
            "422",
            "A value that contradicts another field or the channel: a mapped or limited model not among \
             its models, a model listed twice",
        );
    }
    if path.starts_with("/api/audit") {
        add("422", "`from` after `to`");
    }
    if path.starts_with("/api/logs") {
        add(
            "422",
            "`from` after `to`, a `tz` the time zone database does not know, or a longer series than allowed",
        );
    }
    // OpenAPI requires a description on every response.
    for (status, response) in responses.iter_mut() {
        if response.get("$ref").is_none() && response["description"].as_str().unwrap_or_default().is_empty() {
            response["description"] = json!(describe_status(status));
        }
    }
}

/// A response description from its status code.
fn describe_status(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        "204" => "No content",
        "400" => "Malformed input; nothing changed",
        "401" => "Missing, invalid or expired credentials",
        "403" => "Not allowed for this caller",
        "404" => "Not found (or not yours)",
        "409" => "Conflicts with what exists; nothing changed",
        "410" => "Gone",
        "413" => "Request body too large",
        "429" => "Too many requests or quota used up; see Retry-After",
        "500" => "Internal error",
        "502" => "Every upstream attempt failed",
        "503" => "Unavailable: no usable key, or a dependency is not configured",
        _ => "Response",
    }
}

/// A response carrying the error body.
fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } }
    })
}

/// `Page_X` schemas: their `items` refer to the schema `X` where it exists.
fn refer_page_items(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let names: Vec<String> = schemas.keys().cloned().collect();
    for name in &names {
        let Some(item) = name.strip_prefix("Page_") else {
            continue;
        };
        if !names.iter().any(|n| n == item) {
            continue;
        }
        if let Some(items) = schemas[name].pointer_mut("/properties/items/items") {
            *items = json!({ "$ref": format!("#/components/schemas/{item}") });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_operation_says_so_and_a_page_refers_to_its_item() {
        let mut doc = json!({
            "paths": {
                "/api/auth/login": { "post": { "responses": {}, "requestBody": {} } },
                "/api/users": { "get": {
                    "security": [{ "bearer": [] }],
                    "responses": {},
                    "parameters": [{ "in": "query", "name": "limit", "schema": { "type": "integer" } }]
                } }
            },
            "components": { "schemas": {
                "UserView": { "type": "object" },
                "Page_UserView": { "properties": { "items": { "type": "array", "items": { "type": "object" } } } }
            } }
        });
        complete(&mut doc);
        let login = &doc["paths"]["/api/auth/login"]["post"];
        assert_eq!(login["security"], json!([]));
        assert!(login["responses"]["413"].is_object());
        assert!(login["responses"].get("403").is_none());
        let users = &doc["paths"]["/api/users"]["get"];
        assert!(users["responses"]["403"]["description"]
            .as_str()
            .unwrap()
            .contains("password_change_required"));
        assert_eq!(users["parameters"][0]["schema"]["maximum"], json!(PAGE_MAX));
        assert_eq!(
            doc["components"]["schemas"]["Page_UserView"]["properties"]["items"]["items"],
            json!({ "$ref": "#/components/schemas/UserView" })
        );
        assert!(doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["description"].is_string()));
    }
}
