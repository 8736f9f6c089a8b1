//! The settings' sections: retention, webhooks and the ticket sources,
//! Slack, SMTP and mailboxes — each with its defaults and its own checks.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use super::{Secret, Tls, empty_path_is_none};

/// `[retention]` (README, "Retention").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Message bodies, raw mail and rejected input older than this
    /// (`"365d"`) are removed by a daily job; the SLA record stays.
    /// Absent: kept for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bodies: Option<Days>,
}

/// A whole number of days, written `"365d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(u32);

impl Days {
    /// The longest retention that makes sense: a century.
    const MAX: u32 = 36_500;

    pub fn new(days: u32) -> Option<Days> {
        (1..=Self::MAX).contains(&days).then_some(Days(days))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl std::str::FromStr for Days {
    type Err = String;
    fn from_str(s: &str) -> Result<Days, String> {
        s.trim()
            .strip_suffix('d')
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(Days::new)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a number of days: write it like \"365d\" (1 to {} days)",
                    Self::MAX
                )
            })
    }
}

impl Serialize for Days {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}d", self.0))
    }
}

impl<'de> Deserialize<'de> for Days {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Days, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[webhooks]`: how generic webhook deliveries are signed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Standard Webhooks signing secret (`whsec_` + base64). Empty: deliveries
    /// carry `webhook-id` but are not signed.
    pub signing_secret: Secret,
    /// Read the secret from this file instead (wins over `signing_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_file: Option<PathBuf>,
}

impl WebhookSettings {
    /// The HMAC key: the base64 after the optional `whsec_` prefix. `None`
    /// when unset; an error when it is not base64.
    pub fn signing_key(&self) -> Result<Option<Vec<u8>>, String> {
        use base64::Engine;
        let s = self.signing_secret.expose().trim();
        if s.is_empty() {
            return Ok(None);
        }
        let b64 = s.strip_prefix("whsec_").unwrap_or(s);
        match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(key) if !key.is_empty() => Ok(Some(key)),
            _ => Err("`webhooks.signing_secret` must be `whsec_` followed by base64 (e.g. `whsec_` + `openssl rand -base64 32`)".into()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubSettings {
    /// Shared secret GitHub signs webhook deliveries with.
    pub webhook_secret: Secret,
    /// Read the secret from this file instead (wins over `webhook_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Contract channel the deliveries feed (default: the first `ticket` channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// `[jira]` and `[linear]`: the secret their webhooks are signed with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketWebhookSettings {
    #[serde(default)]
    pub webhook_secret: Secret,
    /// Read the secret from this file instead (wins over `webhook_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Contract channel the deliveries feed (default: the first `ticket` channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl SlackSettings {
    /// What is wrong with the section, each naming its key.
    pub(super) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.signing_secret.is_empty() {
            out.push(
                "`slack.signing_secret` is empty: set it (or `signing_secret_file`) to the app's \
                 Signing Secret, or remove [slack]"
                    .to_string(),
            );
        }
        let token = self.bot_token.expose();
        if token.is_empty() {
            out.push(
                "`slack.bot_token` is empty: set it (or `bot_token_file`) to the app's Bot User \
                 OAuth Token (xoxb-…), or remove [slack]"
                    .to_string(),
            );
        } else if !token.starts_with("xoxb-") {
            out.push(
                "`slack.bot_token` must be a bot token (it starts with xoxb-): a user token \
                 would post as a person"
                    .to_string(),
            );
        }
        if self.team_ids.is_empty() {
            out.push(
                "`slack.team_ids` is empty: list your workspace ids (T…), or every message \
                 would be the client's"
                    .to_string(),
            );
        }
        for id in &self.team_ids {
            let ok = id.starts_with(['T', 'E']) && id.chars().all(|c| c.is_ascii_alphanumeric());
            if !ok {
                out.push(format!(
                    "`slack.team_ids`: `{id}` is not a workspace id (T… or E…, letters and digits)"
                ));
            }
        }
        if !(self.api_url.starts_with("http://") || self.api_url.starts_with("https://")) {
            out.push(format!(
                "`slack.api_url` must be an http:// or https:// URL (got `{}`)",
                self.api_url
            ));
        }
        out
    }
}

/// `[basecamp]`: Basecamp signs nothing, so the secret is the last segment
/// of the webhook's URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasecampSettings {
    #[serde(default)]
    pub webhook_secret: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_file: Option<PathBuf>,
    /// The team's Basecamp company ids: people of these companies are the
    /// team, everyone else the client.
    #[serde(default)]
    pub company_ids: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// `[slack]`: the app's signing secret (Events API requests), its bot
/// token (`chat.postMessage`), and which workspaces are the team's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// The app's Signing Secret (Basic Information → App Credentials).
    #[serde(default)]
    pub signing_secret: Secret,
    /// Read the signing secret from this file instead (wins over `signing_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_file: Option<PathBuf>,
    /// The bot token (`xoxb-…`) acknowledgements are posted with.
    #[serde(default)]
    pub bot_token: Secret,
    /// Read the bot token from this file instead (wins over `bot_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_token_file: Option<PathBuf>,
    /// The team's workspace ids (`T…`): their members' messages are the
    /// team's answers; everyone else in a client's channel is the client.
    #[serde(default)]
    pub team_ids: Vec<String>,
    /// Slack's Web API base URL (tests point it at loopback).
    #[serde(default = "default_slack_api_url")]
    pub api_url: String,
    /// The contract channel Slack feeds (default: the contract's first
    /// `slack` channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

fn default_slack_api_url() -> String {
    "https://slack.com/api".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: String,
    pub password: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// `From:` of acknowledgements and alerts.
    pub from: super::FromAddress,
    /// Extra CA certificates (PEM) trusted for the SMTP server besides the
    /// public web roots, for a server whose certificate a private CA signed.
    /// Empty or absent: public roots only. Checked at load: the file must
    /// hold at least one certificate.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_path_is_none"
    )]
    pub ca_file: Option<PathBuf>,
    /// `password` (default) or `oauth2`: XOAUTH2 with a token of `oauth`,
    /// `username` (or the `from` address) as the user.
    #[serde(default)]
    pub auth: crate::oauth::AuthMethod,
    /// The `[oauth.NAME]` credential, with `auth = "oauth2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxSettings {
    pub name: String,
    /// The contract channel this mailbox feeds.
    #[serde(default = "default_mail_channel")]
    pub channel: String,
    pub host: String,
    #[serde(default = "default_imap_port")]
    pub port: u16,
    #[serde(default = "default_imap_tls")]
    pub tls: Tls,
    pub username: String,
    #[serde(default)]
    pub password: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_inbox")]
    pub inbox: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    /// Addresses (or `@domain` suffixes) whose mail counts as the team's.
    #[serde(default)]
    pub team_addresses: Vec<String>,
    /// Extra CA certificates (PEM) trusted for this IMAP server besides the
    /// public web roots, for a server whose certificate a private CA signed.
    /// Empty or absent: public roots only. Checked at load: the file must
    /// hold at least one certificate.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_path_is_none"
    )]
    pub ca_file: Option<PathBuf>,
    /// `password` (default) or `oauth2` (a token of `oauth`, over `sasl`).
    #[serde(default)]
    pub auth: crate::oauth::AuthMethod,
    /// The `[oauth.NAME]` credential, with `auth = "oauth2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<String>,
    /// `xoauth2` (default) or `oauthbearer`, with `auth = "oauth2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<crate::oauth::Sasl>,
}

fn default_mail_channel() -> String {
    "email".into()
}
fn default_imap_port() -> u16 {
    993
}
fn default_imap_tls() -> Tls {
    Tls::Tls
}
fn default_inbox() -> String {
    "INBOX".into()
}
