//! Secrets at rest: provider keys and the values of channels' extra headers
//! are sealed with ChaCha20-Poly1305 under a key derived from `SLUICE_SECRET`;
//! `sk-` tokens and one-time links are stored as SHA-256 hashes. The same
//! master secret also derives the JWT signing key.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Seals and opens provider keys.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(…)")
    }
}

impl SecretBox {
    /// A box whose key is derived from `secret`.
    pub fn new(master: &str) -> Self {
        let key = derive_key(master, "provider-keys/v1");
        SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// Seal a plain key: hex of nonce then ciphertext.
    pub fn seal(&self, plain: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .expect("encryption of a short key cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        hex::encode(out)
    }

    /// Open a sealed key; fails when it was sealed under another secret.
    pub fn open(&self, sealed: &str) -> anyhow::Result<String> {
        let bytes = hex::decode(sealed).context("sealed key is not hex")?;
        anyhow::ensure!(bytes.len() > 12, "sealed key is too short");
        let (nonce, ct) = bytes.split_at(12);
        let plain = self.cipher.decrypt(Nonce::from_slice(nonce), ct).map_err(|_| {
            anyhow::anyhow!(
                "cannot decrypt a provider key: SLUICE_SECRET differs from the one it was stored with"
            )
        })?;
        Ok(String::from_utf8(plain)?)
    }
}

/// How a sealed header value starts; a value without it was stored before
/// header values were sealed (and is sealed at the next start).
const SEALED_VALUE: &str = "sealed:";

impl SecretBox {
    /// A header map as stored: JSON of each name and its sealed value.
    pub fn seal_map(&self, map: &BTreeMap<String, String>) -> String {
        let sealed: BTreeMap<&String, String> = map
            .iter()
            .map(|(k, v)| (k, format!("{SEALED_VALUE}{}", self.seal(v))))
            .collect();
        serde_json::to_string(&sealed).expect("a map of strings serialises")
    }

    /// A stored header map, opened.
    pub fn open_map(&self, stored: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let map: BTreeMap<String, String> =
            serde_json::from_str(stored).context("stored headers are not a JSON map")?;
        map.into_iter()
            .map(|(k, v)| match v.strip_prefix(SEALED_VALUE) {
                Some(sealed) => Ok((k, self.open(sealed)?)),
                None => Ok((k, v)),
            })
            .collect()
    }
}

/// Whether every value of a stored header map is sealed.
pub fn map_is_sealed(stored: &str) -> bool {
    serde_json::from_str::<BTreeMap<String, String>>(stored)
        .map(|m| m.values().all(|v| v.starts_with(SEALED_VALUE)))
        .unwrap_or(false)
}

/// The master secret: `secret` when given, else the one kept in
/// `data_dir/secret` (created on first start).
pub fn master_secret(secret: Option<&str>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(s) = secret {
        return Ok(s.to_string());
    }
    let path = data_dir.join("secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok(s.trim().to_string());
    }
    crate::startup::create_private_dir(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let s = hex::encode(bytes);
    write_private(&path, &s)?;
    tracing::warn!(path = %path.display(), "SLUICE_SECRET is not set; generated one. Set SLUICE_SECRET to the same value on every replica");
    Ok(s)
}

/// A key for one purpose, derived from the master secret.
pub fn derive_key(master: &str, purpose: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"sluice/")
        .chain_update(purpose.as_bytes())
        .chain_update(b"\0")
        .chain_update(master.as_bytes())
        .finalize()
        .into()
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

/// SHA-256 hex of a secret, as stored for tokens and key fingerprints.
pub fn hash_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random `sk-` token.
pub fn new_token_key() -> String {
    format!("sk-{}", random_hex(24))
}

/// `n` random bytes as hex: one-time links, refresh tokens, passwords.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_sealed_and_plain_ones_still_open() {
        let b = SecretBox::new("s");
        let map = BTreeMap::from([("X-Api-Key".to_string(), "very-secret-value".to_string())]);
        let stored = b.seal_map(&map);
        assert!(!stored.contains("very-secret-value"));
        assert!(map_is_sealed(&stored));
        assert_eq!(b.open_map(&stored).unwrap(), map);
        assert!(SecretBox::new("other").open_map(&stored).is_err());
        let legacy = r#"{"X-Api-Key":"very-secret-value"}"#;
        assert!(!map_is_sealed(legacy));
        assert_eq!(b.open_map(legacy).unwrap(), map);
        assert!(map_is_sealed("{}"));
    }

    #[test]
    fn sealed_keys_open_only_with_the_same_secret() {
        let a = SecretBox::new("one");
        let sealed = a.seal("nvapi-secret");
        assert!(!sealed.contains("nvapi"));
        assert_eq!(a.open(&sealed).unwrap(), "nvapi-secret");
        assert!(SecretBox::new("two").open(&sealed).is_err());
    }

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let t = new_token_key();
        assert!(t.starts_with("sk-") && t.len() == 51);
        assert_ne!(t, new_token_key());
        assert_eq!(hash_hex("abc"), hash_hex("abc"));
        assert_eq!(hash_hex("abc").len(), 64);
    }
}
