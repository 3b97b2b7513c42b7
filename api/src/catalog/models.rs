//! The models this deployment serves, and to which user groups: a snapshot the
//! relay reads on every request without asking any actor, replaced whole each
//! time channels or keys change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

/// Who may use a model.
#[derive(Clone, Debug, PartialEq)]
enum Access {
    /// Every group.
    All,
    /// These groups only.
    Groups(BTreeSet<String>),
}

/// Served models by name, with the groups that may use each.
#[derive(Clone, Debug, Default)]
pub struct ServedModels(Arc<RwLock<Arc<Snapshot>>>);

#[derive(Debug, Default)]
struct Snapshot {
    access: BTreeMap<String, Access>,
    /// Models some key limits by tokens: their requests need a token estimate.
    token_limited: BTreeSet<String>,
}

impl ServedModels {
    /// Replace the snapshot: `channels` lists each channel's models and groups
    /// (empty groups: every group); `token_limited` the models some key limits
    /// by tokens.
    pub fn replace<'a>(
        &self,
        channels: impl IntoIterator<Item = (&'a [String], &'a [String])>,
        token_limited: impl IntoIterator<Item = String>,
    ) {
        let mut served: BTreeMap<String, Access> = BTreeMap::new();
        for (models, groups) in channels {
            for model in models {
                let access = served
                    .entry(model.clone())
                    .or_insert_with(|| Access::Groups(BTreeSet::new()));
                match (groups.is_empty(), &mut *access) {
                    (true, _) => *access = Access::All,
                    (false, Access::Groups(set)) => set.extend(groups.iter().cloned()),
                    (false, Access::All) => {}
                }
            }
        }
        *self.0.write().expect("models lock") = Arc::new(Snapshot {
            access: served,
            token_limited: token_limited.into_iter().collect(),
        });
    }

    fn now(&self) -> Arc<Snapshot> {
        self.0.read().expect("models lock").clone()
    }

    /// Whether some key limits `model` by tokens (its requests then need a
    /// token estimate before they are sent).
    pub fn token_limited(&self, model: &str) -> bool {
        self.now().token_limited.contains(model)
    }

    /// Whether a user of `group` may use `model`.
    pub fn serves(&self, model: &str, group: &str) -> bool {
        self.now().access.get(model).is_some_and(|a| match a {
            Access::All => true,
            Access::Groups(groups) => groups.contains(group),
        })
    }

    /// The models a user of `group` may use (every model for `None`), sorted.
    pub fn list(&self, group: Option<&str>) -> Vec<String> {
        self.now()
            .access
            .iter()
            .filter(|(_, a)| match (a, group) {
                (Access::All, _) | (_, None) => true,
                (Access::Groups(groups), Some(g)) => groups.contains(g),
            })
            .map(|(m, _)| m.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_model_is_served_to_the_groups_of_every_channel_that_has_it() {
        let served = ServedModels::default();
        let (a, b, c) = (
            strings(&["llama", "qwen"]),
            strings(&["qwen", "vip-only"]),
            strings(&["vip"]),
        );
        let everyone: Vec<String> = Vec::new();
        served.replace([(&a[..], &everyone[..]), (&b[..], &c[..])], ["qwen".to_string()]);
        assert!(served.token_limited("qwen") && !served.token_limited("llama"));
        assert!(served.serves("llama", "default"));
        assert!(served.serves("qwen", "default"), "one channel serves everyone");
        assert!(!served.serves("vip-only", "default"));
        assert!(served.serves("vip-only", "vip"));
        assert!(!served.serves("nope", "vip"));
        assert_eq!(served.list(Some("default")), ["llama", "qwen"]);
        assert_eq!(served.list(None), ["llama", "qwen", "vip-only"]);
    }
}
