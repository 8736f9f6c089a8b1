//! Delegated grants (refresh tokens) at rest: one file per credential and
//! account under `DIR/oauth-grants/`, sealed with XChaCha20-Poly1305 under
//! the key of `secret_key_file`, the credential and account as associated
//! data (a file copied to another account's name does not open).
//!
//! Files rather than database rows: a grant is a secret written a few times
//! a day, and keeping it out of the database keeps it out of its backups
//! unless the key goes with them. Without a key file keepword creates one
//! (mode 0600) on first need and says it must be backed up.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Marks the file format, so a future one can be told apart.
const MAGIC: &[u8; 4] = b"kwg1";

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("secret key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error(
        "the stored grant {path} cannot be opened with the key in {key}: a different or \
         damaged key (restore the key file that was backed up with it), or a damaged file \
         (sign in again)"
    )]
    WrongKey { path: PathBuf, key: PathBuf },
    #[error("grant file {path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

/// The key file when `secret_key_file` is unset.
pub const DEFAULT_KEY_FILE: &str = "data/secret.key";

pub struct GrantStore {
    dir: PathBuf,
    key_path: PathBuf,
    cipher: XChaCha20Poly1305,
}

impl GrantStore {
    /// Opens the store in `dir` with the key at `key_path`, creating the key
    /// (random, mode 0600) when `create_key` and it does not exist. A key
    /// file of the wrong size, or readable by others, is refused.
    pub fn open(dir: &Path, key_path: &Path, create_key: bool) -> Result<GrantStore, StoreError> {
        let key_err = |reason: String| StoreError::Key {
            path: key_path.to_path_buf(),
            reason,
        };
        if !key_path.exists() {
            if !create_key {
                return Err(key_err("does not exist".into()));
            }
            if let Some(parent) = key_path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| key_err(e.to_string()))?;
            }
            let mut key = [0u8; KEY_LEN];
            rand::rng().fill_bytes(&mut key);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(key_path)
                .map_err(|e| key_err(format!("cannot create: {e}")))?;
            f.write_all(&key).map_err(|e| key_err(e.to_string()))?;
            tracing::warn!(
                key = %key_path.display(),
                "created the secret key that encrypts stored OAuth grants: back it up with the \
                 database; without it every delegated account must sign in again"
            );
        }
        let meta = std::fs::metadata(key_path).map_err(|e| key_err(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(key_err(format!(
                "is readable by other users (mode {:o}): chmod 600 it",
                meta.permissions().mode() & 0o777
            )));
        }
        let key = std::fs::read(key_path).map_err(|e| key_err(e.to_string()))?;
        if key.len() != KEY_LEN {
            return Err(key_err(format!(
                "holds {} bytes; a key is {KEY_LEN} random bytes",
                key.len()
            )));
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&key).map_err(|e| key_err(e.to_string()))?;
        Ok(GrantStore {
            dir: dir.join("oauth-grants"),
            key_path: key_path.to_path_buf(),
            cipher,
        })
    }

    /// The store `settings` ask for: `None` when no credential is delegated.
    /// Grants live beside an SQLite database, else in `data/`.
    pub fn for_settings(
        settings: &crate::config::Settings,
    ) -> Result<Option<GrantStore>, StoreError> {
        if !settings
            .oauth
            .values()
            .any(|o| o.grant == super::Grant::Delegated)
        {
            return Ok(None);
        }
        let dir = base_dir(settings);
        match &settings.secret_key_file {
            Some(key) => GrantStore::open(&dir, key, false).map(Some),
            None => GrantStore::open(&dir, Path::new(DEFAULT_KEY_FILE), true).map(Some),
        }
    }

    fn path(&self, credential: &str, account: &str) -> PathBuf {
        // Hex keeps any address a valid, unambiguous file name.
        self.dir
            .join(hex::encode(credential))
            .join(format!("{}.grant", hex::encode(account)))
    }

    fn aad(credential: &str, account: &str) -> Vec<u8> {
        format!("keepword oauth grant\0{credential}\0{account}").into_bytes()
    }

    /// Stores `refresh_token`, replacing the previous one atomically (a
    /// crash leaves the old grant or the new, never half of one).
    pub fn put(
        &self,
        credential: &str,
        account: &str,
        refresh_token: &str,
    ) -> Result<(), StoreError> {
        let path = self.path(credential, account);
        let io = |e: std::io::Error| StoreError::Io {
            path: path.clone(),
            reason: e.to_string(),
        };
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: refresh_token.as_bytes(),
                    aad: &Self::aad(credential, account),
                },
            )
            .map_err(|_| StoreError::Io {
                path: path.clone(),
                reason: "encryption failed".into(),
            })?;
        let parent = path.parent().expect("grant paths have a folder");
        std::fs::create_dir_all(parent).map_err(io)?;
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(MAGIC).map_err(io)?;
            f.write_all(&nonce).map_err(io)?;
            f.write_all(&sealed).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(())
    }

    /// When a grant was last stored (any credential and account); `None`
    /// when none is. Cheap: a few `stat`s.
    pub fn last_change(&self) -> Option<std::time::SystemTime> {
        let mut newest = None;
        for folder in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(folder.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let is_grant = file.path().extension().is_some_and(|e| e == "grant");
                if let Ok(modified) = file.metadata().and_then(|m| m.modified())
                    && is_grant
                {
                    newest = newest.max(Some(modified));
                }
            }
        }
        newest
    }

    /// The stored refresh token; `None` when nobody signed in yet.
    pub fn get(&self, credential: &str, account: &str) -> Result<Option<String>, StoreError> {
        let path = self.path(credential, account);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StoreError::Io {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        let wrong = || StoreError::WrongKey {
            path: path.clone(),
            key: self.key_path.clone(),
        };
        if bytes.len() < MAGIC.len() + NONCE_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return Err(wrong());
        }
        let (nonce, sealed) = bytes[MAGIC.len()..].split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &Self::aad(credential, account),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(plain).map(Some).map_err(|_| wrong())
    }
}

/// Where grants live: beside an SQLite database, else in `data/`.
fn base_dir(settings: &crate::config::Settings) -> PathBuf {
    match crate::store::DatabaseUrl::parse(&settings.database_url) {
        Ok(crate::store::DatabaseUrl::Sqlite(path)) => Path::new(&path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("data")),
        _ => PathBuf::from("data"),
    }
}

/// Deletes the grants stored for `account` (an erased person's delegated
/// sign-in), under every credential; with `dry_run` only counts them.
/// Needs no key: the file names say whose a grant is.
pub fn remove_account_grants(
    settings: &crate::config::Settings,
    account: &str,
    dry_run: bool,
) -> Result<usize, StoreError> {
    let dir = base_dir(settings).join("oauth-grants");
    let io = |path: &Path, e: std::io::Error| StoreError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let credentials = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(&dir, e)),
    };
    let mut names = vec![format!("{}.grant", hex::encode(account))];
    let lower = account.to_lowercase();
    if lower != account {
        names.push(format!("{}.grant", hex::encode(lower)));
    }
    let mut removed = 0;
    for credential in credentials {
        let credential = credential.map_err(|e| io(&dir, e))?.path();
        for name in &names {
            let file = credential.join(name);
            if file.is_file() {
                if !dry_run {
                    std::fs::remove_file(&file).map_err(|e| io(&file, e))?;
                }
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_opens_only_with_its_key_and_under_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("secret.key");
        let store = GrantStore::open(dir.path(), &key, true).unwrap();
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        store.put("m365", "ann@x.test", "refresh-1").unwrap();
        assert_eq!(
            store.get("m365", "ann@x.test").unwrap().as_deref(),
            Some("refresh-1")
        );
        assert_eq!(store.get("m365", "bob@x.test").unwrap(), None);
        let file = store.path("m365", "ann@x.test");
        let raw = std::fs::read(&file).unwrap();
        assert!(
            !raw.windows(9).any(|w| w == b"refresh-1"),
            "stored in the clear"
        );

        // Copied under another account's name: the associated data differs.
        let other = store.path("m365", "bob@x.test");
        std::fs::copy(&file, &other).unwrap();
        assert!(matches!(
            store.get("m365", "bob@x.test"),
            Err(StoreError::WrongKey { .. })
        ));

        // Another key cannot read it, and says what to do.
        let key2 = dir.path().join("other.key");
        let store2 = GrantStore::open(dir.path(), &key2, true).unwrap();
        let e = store2.get("m365", "ann@x.test").unwrap_err().to_string();
        assert!(e.contains("restore the key file"), "{e}");

        // A missing key is an error when it may not be created.
        let e = GrantStore::open(dir.path(), &dir.path().join("none.key"), false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        std::fs::set_permissions(&key2, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = GrantStore::open(dir.path(), &key2, false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }
}
