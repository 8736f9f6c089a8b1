//! JSON webhooks over HTTP(S) (reqwest, rustls). Any 2xx is delivered;
//! anything else, or no answer within the timeout, is retried by the worker.

use std::time::Duration;

use super::NotifyError;

/// One POST may take this long, connect included. Well under the lease.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);

/// How much of an error response body is kept in `last_error`: enough to see
/// Slack's `invalid_payload`, not a whole HTML error page.
const ERROR_BODY_CHARS: usize = 200;

#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
}

impl WebhookSender {
    pub fn new() -> Result<WebhookSender, NotifyError> {
        Self::with_timeout(WEBHOOK_TIMEOUT)
    }

    pub fn with_timeout(timeout: Duration) -> Result<WebhookSender, NotifyError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("keepword/", env!("CARGO_PKG_VERSION")))
            // A redirect would repost the alert somewhere nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError::Webhook(format!("cannot build the HTTP client: {e}")))?;
        Ok(WebhookSender { client })
    }

    /// POSTs `body` as JSON; `Ok` on any 2xx.
    pub async fn send(&self, url: &str, body: &serde_json::Value) -> Result<(), NotifyError> {
        let response = self
            .client
            .post(url)
            .json(body)
            .send()
            .await
            // without_url: Slack-style URLs carry their secret in the path.
            .map_err(|e| NotifyError::Webhook(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(ERROR_BODY_CHARS).collect();
        let message = format!("HTTP {status}: {}", excerpt.trim());
        // 408 and 429 say "later"; other 4xx say the request itself is wrong.
        if status.is_client_error()
            && status != reqwest::StatusCode::REQUEST_TIMEOUT
            && status != reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            Err(NotifyError::Rejected(format!(
                "the webhook receiver: {message}"
            )))
        } else {
            Err(NotifyError::Webhook(message))
        }
    }
}
