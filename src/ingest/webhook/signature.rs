//! GitHub's `X-Hub-Signature-256`: HMAC-SHA256 over the body, checked in
//! constant time; the header's shape can be checked before the body is read.

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// An empty secret would make every forged signature valid.
    #[error("no GitHub webhook secret is configured")]
    NoSecret,
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    #[error("the X-Hub-Signature-256 header is not \"sha256=\" and 64 hex digits")]
    Malformed,
    #[error("the X-Hub-Signature-256 signature does not match the body")]
    Mismatch,
}

/// Checks GitHub's `X-Hub-Signature-256` (`sha256=<hex HMAC-SHA256 of the
/// body>`). The comparison is constant-time (`Mac::verify_slice`), so the
/// response time does not tell a forger how many bytes were right.
pub fn verify_github_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let expected = signature_digest(header)?;
    mac(secret, body)
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The digest an `X-Hub-Signature-256` header carries. Needs no body, so the
/// HTTP edge can refuse a missing or malformed header before reading one.
pub fn signature_digest(header: Option<&str>) -> Result<Vec<u8>, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    header
        .strip_prefix("sha256=")
        .and_then(sha256_hex)
        .ok_or(SignatureError::Malformed)
}

/// 64 hex digits as the 32 bytes of a SHA-256 digest.
pub(super) fn sha256_hex(digits: &str) -> Option<Vec<u8>> {
    (digits.len() == 64)
        .then(|| hex::decode(digits).ok())
        .flatten()
}

/// The `X-Hub-Signature-256` value GitHub would send for `body`: for tests
/// and for tools that replay deliveries.
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, body).finalize().into_bytes())
    )
}

pub(super) fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac
}
