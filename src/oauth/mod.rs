//! OAuth 2.0 logins to IMAP and SMTP (Microsoft 365, Google, any provider
//! with a token endpoint): the `[oauth.NAME]` settings, access tokens
//! ([`TokenSource`]), the SASL mechanisms, and the failures in words with
//! the fix where it is known.
//!
//! Tokens live in memory only. A login refused because of the token drops
//! it, takes a fresh one and retries once (the callers do that:
//! `imap` and `notify::smtp`).

pub mod check;
pub mod jwt;
pub mod sasl;
pub mod settings;
pub mod smtp;
pub mod store;
pub mod token;

pub use settings::{AuthMethod, Grant, OAuthSettings, Provider, Sasl};
pub use token::{AccessToken, DeviceCode, GrantStatus, OAuthMetrics, TokenSource};

#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    #[error("no [oauth.{0}] credential is configured")]
    Unknown(String),
    #[error("OAuth credential `{credential}`: {reason}")]
    Config { credential: String, reason: String },
    #[error("cannot reach the token endpoint {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "the token endpoint refused credential `{credential}` (HTTP {status}): {error}{}",
        describe(description)
    )]
    Refused {
        credential: String,
        status: u16,
        error: String,
        description: String,
    },
    #[error(
        "credential `{credential}` for {account}: invalid_grant{}; needs sign-in",
        describe(description)
    )]
    InvalidGrant {
        credential: String,
        account: String,
        description: String,
    },
    #[error(
        "credential `{credential}` for {account}: nobody has signed in yet (dashboard: Connections, Sign in)"
    )]
    NotSignedIn { credential: String, account: String },
    #[error("the stored grant: {0}")]
    Store(String),
}

fn describe(description: &str) -> String {
    if description.is_empty() {
        String::new()
    } else {
        format!(" ({description})")
    }
}

impl OAuthError {
    /// A person must act (sign in, restore consent): retrying soon cannot help.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(
            self,
            OAuthError::InvalidGrant { .. } | OAuthError::NotSignedIn { .. }
        )
    }

    /// What to do about it, where that is known.
    pub fn fix(&self) -> Option<&'static str> {
        match self {
            OAuthError::InvalidGrant { .. } => Some(
                "the grant was revoked, the password reset or the grant went unused too long: \
                 sign in again; for an app-only or service-account credential, check the \
                 admin consent or the domain-wide delegation",
            ),
            OAuthError::Refused {
                error, description, ..
            } => Some(token_error_fix(error, description)),
            OAuthError::Unreachable { .. } => Some(
                "check the network path to the token endpoint (proxy, firewall, DNS) and `token_url`",
            ),
            OAuthError::Config { .. } | OAuthError::Unknown(_) => {
                Some("correct the [oauth.NAME] table in the config file")
            }
            OAuthError::NotSignedIn { .. } => {
                Some("sign in on the dashboard's Connections page as the mailbox's user")
            }
            OAuthError::Store(_) => Some(
                "restore `secret_key_file` from the backup taken with the database, or sign in again",
            ),
        }
    }
}

/// The fix for a token endpoint's error, Microsoft's AADSTS codes first.
fn token_error_fix(error: &str, description: &str) -> &'static str {
    let known = [
        (
            "AADSTS7000215",
            "the client secret is wrong: copy the secret's *value* (not its id) from the app \
             registration, or create a new one",
        ),
        (
            "AADSTS7000222",
            "the client secret has expired: create a new one in the app registration",
        ),
        (
            "AADSTS700016",
            "the app (client_id) is not in this tenant: check `client_id` and `tenant`",
        ),
        (
            "AADSTS90002",
            "the tenant does not exist: check `tenant` (e.g. agency.onmicrosoft.com)",
        ),
        (
            "AADSTS70011",
            "the scope is not valid for this grant: app-only needs \
             https://outlook.office365.com/.default",
        ),
    ];
    if let Some((_, fix)) = known.iter().find(|(code, _)| description.contains(code)) {
        return fix;
    }
    match error {
        "invalid_client" => "the client id or secret is wrong (or the secret expired)",
        "unauthorized_client" => {
            "the client may not use this grant: for Google, authorise the service account's \
             client id for domain-wide delegation with the scope https://mail.google.com/"
        }
        "invalid_scope" => "the provider does not accept `scope`: leave it unset for the default",
        "access_denied" => {
            "the person declined, or the app needs an admin's consent first; sign in again"
        }
        "expired_token" => "run `keepword oauth login` again and sign in within the time it shows",
        _ => "see the provider's answer above",
    }
}

/// The fix for a login refused by a mail server, from its answer.
pub fn login_fix(answer: &str, grant: Option<Grant>) -> Option<&'static str> {
    if answer.contains("5.7.139") {
        return Some(
            "SMTP AUTH is disabled for the tenant or the mailbox: \
             `Set-CASMailbox -Identity MAILBOX -SmtpClientAuthenticationDisabled $false`",
        );
    }
    if answer.contains("AUTHENTICATIONFAILED") || answer.contains("535") {
        return Some(match grant {
            Some(Grant::ClientCredentials) => {
                "the token was refused: the service principal lacks access to the mailbox \
                 (`New-ServicePrincipal` with the Enterprise application's object id, then \
                 `Add-MailboxPermission -User SERVICE_PRINCIPAL -AccessRights FullAccess`), or \
                 IMAP.AccessAsApp / SMTP.SendAsApp lack admin consent"
            }
            Some(Grant::JwtBearer) => {
                "the token was refused: check the domain-wide delegation (client id and the \
                 scope https://mail.google.com/) and that IMAP is on for the mailbox"
            }
            _ => "the server refused the login: check the username and the password or token",
        });
    }
    None
}
