//! API keys with roles, Stripe-like: a **secret** key (`sk_…`) acts for the
//! merchant, a **publishable** key (`pk_…`) for a storefront's buyers. The
//! host keeps only each key's sha256 (in `data_dir/api-keys.json`, mode
//! 0600), shows a key once when it is made, and checks the caller's role
//! against the route's before a plugin runs (`http::gateway`).
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file the keys live in, inside the data directory.
pub const KEYS_FILE: &str = "api-keys.json";

/// Random bytes in a key (hex after its prefix).
const KEY_BYTES: usize = 24;

/// Longest name a key may carry.
const MAX_NAME: usize = 100;

/// Who is calling, from the credential presented. Ordered: each role may do
/// what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// No credential.
    Public,
    /// A publishable key: a storefront acting for a buyer.
    Buyer,
    /// A secret key or the admin token: the merchant.
    Merchant,
}

impl Role {
    /// `public`, `buyer` or `merchant`: the route declaration's word, and the
    /// value of the `x-mercato-role` header plugins are given.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Public => "public",
            Role::Buyer => "buyer",
            Role::Merchant => "merchant",
        }
    }

    /// Parses a route's `x-mercato-access`.
    pub fn parse(word: &str) -> Option<Role> {
        match word {
            "public" => Some(Role::Public),
            "buyer" => Some(Role::Buyer),
            "merchant" => Some(Role::Merchant),
            _ => None,
        }
    }
}

/// The two kinds of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// `sk_…`: the merchant's; never shipped to a browser.
    Secret,
    /// `pk_…`: a storefront's; may be public.
    Publishable,
}

impl KeyKind {
    fn prefix(self) -> &'static str {
        match self {
            KeyKind::Secret => "sk_",
            KeyKind::Publishable => "pk_",
        }
    }

    fn role(self) -> Role {
        match self {
            KeyKind::Secret => Role::Merchant,
            KeyKind::Publishable => Role::Buyer,
        }
    }
}

/// A key as listed: everything but the key itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyInfo {
    /// `key_` and 16 hex digits.
    pub id: String,
    /// Secret or publishable.
    pub kind: KeyKind,
    /// What the merchant called it.
    pub name: String,
    /// The key's first characters and last four, to recognise it by.
    pub redacted: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; a revoked key authenticates no one.
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    info: KeyInfo,
    /// sha256 of the whole key, hex.
    sha256: String,
}

/// Why a key could not be made, found or kept.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The request was not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// No key has that id.
    #[error("no API key has the id {0}")]
    NotFound(String),
    /// The key file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The key file is not what this host writes.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// What is wrong.
        reason: String,
        /// The file.
        path: PathBuf,
    },
}

/// The host's API keys, read once at start and written through on change.
pub struct Keys {
    path: PathBuf,
    /// By id, in creation order of their ids' listing.
    keys: Mutex<BTreeMap<String, Stored>>,
}

fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Keys {
    /// The keys kept in `data_dir` (none when the file does not exist yet).
    pub fn open(data_dir: &Path) -> Result<Keys, KeyError> {
        let path = data_dir.join(KEYS_FILE);
        let keys = match std::fs::read(&path) {
            Ok(bytes) => {
                let list: Vec<Stored> =
                    serde_json::from_slice(&bytes).map_err(|e| KeyError::Corrupt {
                        reason: e.to_string(),
                        path: path.clone(),
                    })?;
                list.into_iter().map(|k| (k.info.id.clone(), k)).collect()
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(KeyError::Io { path, source }),
        };
        Ok(Keys {
            path,
            keys: Mutex::new(keys),
        })
    }

    /// The role `key` authenticates, or `None` for an unknown or revoked key.
    pub fn authenticate(&self, key: &str) -> Option<Role> {
        let kind = if key.starts_with("sk_") {
            KeyKind::Secret
        } else if key.starts_with("pk_") {
            KeyKind::Publishable
        } else {
            return None;
        };
        // Compared by digest: equal digests mean equal keys, and the time a
        // comparison takes says nothing about the key.
        let wanted = digest(key);
        let keys = self.keys.lock().expect("keys poisoned");
        keys.values()
            .find(|k| k.sha256 == wanted && k.info.revoked_at.is_none() && k.info.kind == kind)
            .map(|k| k.info.kind.role())
    }

    /// Makes a key; the answer is the only time the key itself is shown.
    pub fn create(&self, kind: KeyKind, name: &str) -> Result<(KeyInfo, String), KeyError> {
        let name = name.trim();
        if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(KeyError::Invalid(format!(
                "name must be at most {MAX_NAME} characters without control characters"
            )));
        }
        let random = |n: usize| {
            let mut bytes = vec![0u8; n];
            getrandom::fill(&mut bytes).map_err(|e| KeyError::Io {
                path: self.path.clone(),
                source: io::Error::other(e.to_string()),
            })?;
            Ok::<_, KeyError>(hex::encode(bytes))
        };
        let key = format!("{}{}", kind.prefix(), random(KEY_BYTES)?);
        let info = KeyInfo {
            id: format!("key_{}", random(8)?),
            kind,
            name: name.to_owned(),
            redacted: format!("{}…{}", &key[..7], &key[key.len() - 4..]),
            created_at: crate::clock::now_rfc3339(),
            revoked_at: None,
        };
        let mut keys = self.keys.lock().expect("keys poisoned");
        keys.insert(
            info.id.clone(),
            Stored {
                info: info.clone(),
                sha256: digest(&key),
            },
        );
        if let Err(e) = self.save(&keys) {
            keys.remove(&info.id);
            return Err(e);
        }
        Ok((info, key))
    }

    /// Every key, revoked ones too, newest first.
    pub fn list(&self) -> Vec<KeyInfo> {
        let keys = self.keys.lock().expect("keys poisoned");
        let mut list: Vec<KeyInfo> = keys.values().map(|k| k.info.clone()).collect();
        list.sort_by(|a, b| (&b.created_at, &b.id).cmp(&(&a.created_at, &a.id)));
        list
    }

    /// Revokes key `id` from now on; revoking it again changes nothing.
    pub fn revoke(&self, id: &str) -> Result<KeyInfo, KeyError> {
        let mut keys = self.keys.lock().expect("keys poisoned");
        let key = keys
            .get_mut(id)
            .ok_or_else(|| KeyError::NotFound(id.to_owned()))?;
        if key.info.revoked_at.is_some() {
            return Ok(key.info.clone());
        }
        key.info.revoked_at = Some(crate::clock::now_rfc3339());
        let info = key.info.clone();
        if let Err(e) = self.save(&keys) {
            if let Some(key) = keys.get_mut(id) {
                key.info.revoked_at = None;
            }
            return Err(e);
        }
        Ok(info)
    }

    /// Writes the whole set to a new file, then renames it over the old one,
    /// so a crash leaves either set, never half of one.
    fn save(&self, keys: &BTreeMap<String, Stored>) -> Result<(), KeyError> {
        let io_error = |source| KeyError::Io {
            path: self.path.clone(),
            source,
        };
        let list: Vec<&Stored> = keys.values().collect();
        let text = serde_json::to_string_pretty(&list).expect("keys serialise");
        let temporary = self.path.with_extension("json.new");
        let _ = std::fs::remove_file(&temporary);
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io_error)?;
        }
        crate::secrets::write_new(&temporary, &text).map_err(io_error)?;
        std::fs::rename(&temporary, &self.path).map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_authenticate_by_kind_until_revoked_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::open(dir.path()).unwrap();
        let (secret, sk) = keys.create(KeyKind::Secret, "backend").unwrap();
        let (_, pk) = keys.create(KeyKind::Publishable, "storefront").unwrap();
        assert!(sk.starts_with("sk_") && pk.starts_with("pk_"));
        assert_eq!(keys.authenticate(&sk), Some(Role::Merchant));
        assert_eq!(keys.authenticate(&pk), Some(Role::Buyer));
        assert_eq!(keys.authenticate(&format!("{sk}x")), None);
        assert_eq!(keys.authenticate(&format!("pk_{}", &sk[3..])), None);
        assert_eq!(keys.authenticate(""), None);

        let text = std::fs::read_to_string(dir.path().join(KEYS_FILE)).unwrap();
        assert!(
            !text.contains(&sk) && !text.contains(&pk),
            "only digests are kept"
        );
        assert!(text.contains(&digest(&sk)));

        keys.revoke(&secret.id).unwrap();
        assert_eq!(keys.authenticate(&sk), None);
        let again = Keys::open(dir.path()).unwrap();
        assert_eq!(again.authenticate(&sk), None, "revocation is kept");
        assert_eq!(again.authenticate(&pk), Some(Role::Buyer));
        assert_eq!(again.list().len(), 2);
        assert!(matches!(
            again.revoke("key_0000"),
            Err(KeyError::NotFound(_))
        ));
        assert!(matches!(
            again.create(KeyKind::Secret, "bad\nname"),
            Err(KeyError::Invalid(_))
        ));
    }

    #[test]
    fn roles_are_ordered_and_parse_their_words() {
        assert!(Role::Public < Role::Buyer && Role::Buyer < Role::Merchant);
        for role in [Role::Public, Role::Buyer, Role::Merchant] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
    }
}
