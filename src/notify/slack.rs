//! Replies in Slack threads: `chat.postMessage` to `[slack] api_url` with
//! the bot token as `Authorization: Bearer`.
//!
//! Slack answers HTTP 200 with `{"ok": false, "error": "…"}` for most
//! refusals, so the body decides, not the status:
//! - `ok: true`: delivered.
//! - `ratelimited` (HTTP 429) with `Retry-After`: retried after that many
//!   seconds ([`NotifyError::RetryAfter`]).
//! - an error that no retry can fix (`channel_not_found`, `not_in_channel`,
//!   `invalid_auth`, a revoked token, an archived channel…): permanent, with
//!   what to do about it in words; the Connections page lists them.
//! - anything else (`internal_error`, 5xx, no answer): retried with back-off.
//!
//! The token is never logged: errors carry Slack's error code and the
//! channel, never the request.

use std::time::Duration;

use serde_json::{Value, json};

use super::NotifyError;
use crate::config::{Secret, SlackSettings};

/// One request may take this long, connect included. Well under the lease.
pub const SLACK_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct SlackSender {
    client: reqwest::Client,
    api_url: String,
    token: Secret,
}

impl std::fmt::Debug for SlackSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSender")
            .field("api_url", &self.api_url)
            .field("token", &self.token)
            .finish()
    }
}

impl SlackSender {
    pub fn new(settings: &SlackSettings) -> Result<SlackSender, NotifyError> {
        let client = reqwest::Client::builder()
            .timeout(SLACK_TIMEOUT)
            .connect_timeout(SLACK_TIMEOUT)
            .user_agent(concat!("keepword/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the token somewhere nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError::Webhook(format!("cannot build the HTTP client: {e}")))?;
        Ok(SlackSender {
            client,
            api_url: settings.api_url.trim_end_matches('/').to_string(),
            token: settings.bot_token.clone(),
        })
    }

    /// Posts `text` in the thread `thread_ts` of `channel`.
    pub async fn post(
        &self,
        channel: &str,
        thread_ts: &str,
        text: &str,
    ) -> Result<(), NotifyError> {
        let body = json!({
            "channel": channel,
            "thread_ts": thread_ts,
            "text": text,
            // The status and contract links would otherwise unfold into
            // previews under every acknowledgement.
            "unfurl_links": false,
            "unfurl_media": false,
        });
        let response = self
            .client
            .post(format!("{}/chat.postMessage", self.api_url))
            .bearer_auth(self.token.expose())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                NotifyError::Webhook(format!(
                    "Slack: {}",
                    super::webhook::describe_request_error(e)
                ))
            })?;
        let status = response.status();
        let retry_after = super::retry_after_secs(
            response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            crate::clock::Clock::system().now(),
        );
        let answer: Option<Value> = response.json().await.ok();
        let ok = answer
            .as_ref()
            .and_then(|a| a.get("ok"))
            .and_then(Value::as_bool);
        let error = answer
            .as_ref()
            .and_then(|a| a.get("error"))
            .and_then(Value::as_str)
            .map(|e| e.chars().take(80).collect::<String>());
        if status.is_success() && ok == Some(true) {
            return Ok(());
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || error.as_deref() == Some("ratelimited")
        {
            return Err(NotifyError::RetryAfter {
                message: format!("Slack: ratelimited posting in {channel}"),
                secs: retry_after.unwrap_or(30),
            });
        }
        Err(match error.as_deref() {
            Some(code) => match fix_for(code) {
                Some(fix) => {
                    NotifyError::Rejected(format!("Slack: {code} posting in {channel}: {fix}"))
                }
                None => NotifyError::Webhook(format!(
                    "Slack: {code} posting in {channel} (HTTP {status})"
                )),
            },
            None if status.is_client_error() => {
                NotifyError::Rejected(format!("Slack: HTTP {status} posting in {channel}"))
            }
            None => NotifyError::Webhook(format!(
                "Slack: HTTP {status} without an answer posting in {channel}"
            )),
        })
    }
}

/// For an error Slack will give again whatever the timing, what to do about
/// it; `None` for one worth retrying.
pub fn fix_for(code: &str) -> Option<&'static str> {
    Some(match code {
        "channel_not_found" => {
            "the bot cannot see this channel: invite the app to it (/invite @app), or check slack_channels"
        }
        "not_in_channel" => {
            "the bot is not a member of this channel: invite the app to it (/invite @app)"
        }
        "is_archived" => "the channel is archived: unarchive it, or the client moved elsewhere",
        "invalid_auth" | "not_authed" => {
            "the bot token is wrong: copy the Bot User OAuth Token (xoxb-…) into [slack] bot_token"
        }
        "token_revoked" | "token_expired" | "account_inactive" => {
            "the bot token no longer works (the app was removed or reinstalled): install the app again and update [slack] bot_token"
        }
        "missing_scope" => {
            "the app lacks the chat:write scope: add it under OAuth & Permissions and reinstall"
        }
        "restricted_action"
        | "restricted_action_read_only_channel"
        | "restricted_action_thread_only_channel"
        | "ekm_access_denied" => "the workspace does not let the bot post here: ask a Slack admin",
        "msg_too_long" | "no_text" | "invalid_blocks" | "thread_reply_not_available" => {
            "the message itself was refused: check config/templates/ack.slack.txt"
        }
        _ => return None,
    })
}
