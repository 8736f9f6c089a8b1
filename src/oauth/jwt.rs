//! The JWT bearer grant (RFC 7523) as Google's service accounts use it: an
//! RS256 assertion signed with the account's key, `sub` naming the mailbox
//! the domain-wide delegation lets it act for.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long an assertion is good for; Google accepts at most an hour.
const ASSERTION_LIFE: Duration = Duration::from_secs(3600);

/// The parts of a service account's JSON key file the grant needs.
pub struct ServiceAccount {
    pub client_email: String,
    key_id: Option<String>,
    key: jsonwebtoken::EncodingKey,
}

#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
}

/// The assertion's claims.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub scope: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

impl ServiceAccount {
    pub fn read(path: &Path) -> Result<ServiceAccount, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        Self::parse(&text)
    }

    pub fn parse(json: &str) -> Result<ServiceAccount, String> {
        let f: KeyFile = serde_json::from_str(json).map_err(|e| {
            format!("not a service account key file (JSON with client_email and private_key): {e}")
        })?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(f.private_key.as_bytes())
            .map_err(|e| format!("private_key is not an RSA key in PEM: {e}"))?;
        Ok(ServiceAccount {
            client_email: f.client_email,
            key_id: f.private_key_id,
            key,
        })
    }

    /// A signed assertion asking for `scope` on behalf of `subject`.
    pub fn assertion(
        &self,
        subject: &str,
        scope: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<String, String> {
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            iss: self.client_email.clone(),
            sub: subject.to_string(),
            scope: scope.to_string(),
            aud: audience.to_string(),
            iat,
            exp: iat + ASSERTION_LIFE.as_secs(),
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = self.key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }
}
