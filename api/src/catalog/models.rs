//! The models this deployment serves, and to which user groups: a snapshot the
//! relay reads on every request without asking any actor, replaced whole each
//! time channels, keys or fallback chains change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A fallback chain: a name clients use for an ordered list of models.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The name clients ask for.
    pub name: String,
    /// The models tried, in order; each is a model channels serve (never another chain).
    pub models: Vec<String>,
    /// How long each step but the last waits for a key with room.
    pub wait: Duration,
}

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
    /// Fallback chains by name. A chain named like a model stands for it.
    chains: BTreeMap<String, Arc<Chain>>,
}

impl Snapshot {
    fn serves_model(&self, model: &str, group: Option<&str>) -> bool {
        self.access.get(model).is_some_and(|a| match (a, group) {
            (Access::All, _) | (_, None) => true,
            (Access::Groups(groups), Some(g)) => groups.contains(g),
        })
    }

    /// A name is usable when it is a model served to `group`, or a chain one of
    /// whose models is.
    fn serves(&self, name: &str, group: Option<&str>) -> bool {
        match self.chains.get(name) {
            Some(chain) => chain.models.iter().any(|m| self.serves_model(m, group)),
            None => self.serves_model(name, group),
        }
    }
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
        let mut current = self.0.write().expect("models lock");
        *current = Arc::new(Snapshot {
            access: served,
            token_limited: token_limited.into_iter().collect(),
            chains: current.chains.clone(),
        });
    }

    /// Replace the fallback chains, keeping the served models.
    pub fn replace_chains(&self, chains: impl IntoIterator<Item = Chain>) {
        let mut current = self.0.write().expect("models lock");
        *current = Arc::new(Snapshot {
            access: current.access.clone(),
            token_limited: current.token_limited.clone(),
            chains: chains
                .into_iter()
                .map(|c| (c.name.clone(), Arc::new(c)))
                .collect(),
        });
    }

    /// The fallback chain `name` stands for, if it is one.
    pub fn chain(&self, name: &str) -> Option<Arc<Chain>> {
        self.now().chains.get(name).cloned()
    }

    fn now(&self) -> Arc<Snapshot> {
        self.0.read().expect("models lock").clone()
    }

    /// Whether some key limits `model` by tokens (its requests then need a
    /// token estimate before they are sent).
    pub fn token_limited(&self, model: &str) -> bool {
        let now = self.now();
        match now.chains.get(model) {
            Some(chain) => chain.models.iter().any(|m| now.token_limited.contains(m)),
            None => now.token_limited.contains(model),
        }
    }

    /// Whether a user of `group` may use `model` (a model, or a fallback chain
    /// one of whose models it may use).
    pub fn serves(&self, model: &str, group: &str) -> bool {
        self.now().serves(model, Some(group))
    }

    /// The models and fallback chains a user of `group` may use (every one for
    /// `None`), sorted.
    pub fn list(&self, group: Option<&str>) -> Vec<String> {
        let now = self.now();
        let names: BTreeSet<&String> = now.access.keys().chain(now.chains.keys()).collect();
        names
            .into_iter()
            .filter(|name| now.serves(name, group))
            .cloned()
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

    #[test]
    fn a_chain_is_served_to_whoever_may_use_one_of_its_models() {
        let served = ServedModels::default();
        let (a, vip) = (strings(&["llama"]), strings(&["vip"]));
        let b = strings(&["vip-only"]);
        let everyone: Vec<String> = Vec::new();
        served.replace(
            [(&a[..], &everyone[..]), (&b[..], &vip[..])],
            ["vip-only".to_string()],
        );
        let chain = |name: &str, models: &[&str]| Chain {
            name: name.into(),
            models: strings(models),
            wait: Duration::from_secs(5),
        };
        served.replace_chains([
            chain("smart", &["vip-only", "llama"]),
            chain("vip-smart", &["vip-only", "gone"]),
            chain("llama", &["llama", "vip-only"]),
        ]);
        assert!(served.serves("smart", "default"), "through its second model");
        assert!(!served.serves("vip-smart", "default"));
        assert!(served.serves("vip-smart", "vip"));
        assert!(served.token_limited("smart") && !served.token_limited("nope"));
        assert_eq!(served.chain("llama").unwrap().models, ["llama", "vip-only"]);
        assert_eq!(served.list(Some("default")), ["llama", "smart"]);
        assert_eq!(
            served.list(Some("vip")),
            ["llama", "smart", "vip-only", "vip-smart"]
        );
        // Channels changing keep the chains.
        served.replace([(&a[..], &everyone[..])], []);
        assert!(served.chain("smart").is_some() && served.serves("smart", "default"));
        assert!(
            !served.serves("vip-smart", "vip"),
            "none of its models is served any more"
        );
    }
}
