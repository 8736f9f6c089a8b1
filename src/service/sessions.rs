//! Dashboard sessions as the web layer sees them: create one, find the live
//! one a cookie names, end one. The cookie carries a random id; the
//! database keeps only its hash, an expiry and the session's CSRF token.

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::ServiceError;
use crate::clock::Clock;
use crate::store::{self, Store};

/// A live dashboard session: its id's hash, CSRF token and expiry.
pub use crate::store::SessionRow as Session;

/// How long a session lives; a new sign-in after that.
pub const LIFETIME: chrono::Duration = chrono::Duration::hours(12);

/// 256 random bits, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub fn hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

#[derive(Clone)]
pub struct Sessions {
    store: Store,
    clock: Clock,
}

impl Sessions {
    pub fn new(store: Store, clock: Clock) -> Sessions {
        Sessions { store, clock }
    }

    /// A new session: (cookie value, stored row).
    pub fn create(&self) -> Result<(String, Session), ServiceError> {
        let id = random_token();
        let now = self.clock.now();
        let row = Session {
            id_hash: hash(&id),
            csrf: random_token(),
            created_at: now,
            expires_at: now + LIFETIME,
        };
        self.store.with(|c| store::create_session(c, &row))?;
        Ok((id, row))
    }

    /// The live session a cookie value names, if any.
    pub fn current(&self, cookie: Option<&str>) -> Result<Option<Session>, ServiceError> {
        let Some(id) = cookie else {
            return Ok(None);
        };
        // Ours are 64 hex digits: anything else names no session.
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let h = hash(id);
        let now = self.clock.now();
        Ok(self.store.with(|c| store::live_session(c, &h, now))?)
    }

    /// Whether the session with this hash is still live (a sign-out in
    /// another process, or the clock past its expiry, ends it).
    pub fn live(&self, id_hash: &str) -> Result<bool, ServiceError> {
        let now = self.clock.now();
        Ok(self
            .store
            .with(|c| store::live_session(c, id_hash, now))?
            .is_some())
    }

    pub fn end(&self, id_hash: &str) -> Result<(), ServiceError> {
        Ok(self.store.with(|c| store::delete_session(c, id_hash))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_and_distinct() {
        let (x, y) = (random_token(), random_token());
        assert_eq!(x.len(), 64);
        assert_ne!(x, y);
        assert_eq!(hash(&x).len(), 64);
    }
}
