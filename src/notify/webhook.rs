//! Alerts over HTTP(S) (reqwest, rustls): generic JSON webhooks (Standard
//! Webhooks headers), Microsoft Teams Workflows, PagerDuty Events API v2 and
//! Opsgenie. Any 2xx is delivered; 408, 429, 5xx and no answer within the
//! timeout are retried by the worker (a 429 or 503 with `Retry-After` when
//! the receiver said); other 4xx are refused for good and parked, not
//! retried (PagerDuty's 400 says the event itself is wrong).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::NotifyError;
use crate::clock::Clock;

/// One POST may take this long, connect included. Well under the lease.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);

/// How much of an error response body is kept in `last_error`: enough to see
/// Slack's `invalid_payload`, not a whole HTML error page.
const ERROR_BODY_CHARS: usize = 200;

/// Where the paging services are and how generic webhooks are signed (from
/// the service config).
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// PagerDuty Events API v2 enqueue URL.
    pub pagerduty_url: String,
    /// Opsgenie API base URL (`/v2/alerts` is appended).
    pub opsgenie_url: String,
    /// Standard Webhooks HMAC key; `None`: deliveries are not signed.
    pub signing_key: Option<Vec<u8>>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            pagerduty_url: "https://events.pagerduty.com/v2/enqueue".into(),
            opsgenie_url: "https://api.opsgenie.com".into(),
            signing_key: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    endpoints: Arc<Endpoints>,
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
        Ok(WebhookSender {
            client,
            endpoints: Arc::new(Endpoints::default()),
        })
    }

    pub fn with_endpoints(mut self, endpoints: Endpoints) -> WebhookSender {
        self.endpoints = Arc::new(endpoints);
        self
    }

    /// A generic webhook: JSON with `webhook-id` (the same on every retry,
    /// so a receiver can drop a repeat) and, with a signing key,
    /// `webhook-timestamp` and `webhook-signature` per Standard Webhooks.
    /// The timestamp is the real time of this attempt, which is what a
    /// receiver compares with its own clock.
    pub async fn send(
        &self,
        url: &str,
        body: &serde_json::Value,
        webhook_id: &str,
    ) -> Result<(), NotifyError> {
        let payload = serde_json::to_vec(body)
            .map_err(|e| NotifyError::Invalid(format!("webhook body: {e}")))?;
        let mut headers = vec![("webhook-id", webhook_id.to_string())];
        if let Some(key) = &self.endpoints.signing_key {
            let timestamp = Clock::system().now().timestamp();
            headers.push(("webhook-timestamp", timestamp.to_string()));
            headers.push((
                "webhook-signature",
                sign(key, webhook_id, timestamp, &payload),
            ));
        }
        self.post(url, &headers, payload, "the webhook receiver")
            .await
    }

    /// A Teams Workflows post (a message with an Adaptive Card).
    pub async fn send_teams(&self, url: &str, body: &serde_json::Value) -> Result<(), NotifyError> {
        let payload = serde_json::to_vec(body)
            .map_err(|e| NotifyError::Invalid(format!("teams body: {e}")))?;
        self.post(url, &[], payload, "Teams").await
    }

    /// A PagerDuty event (its routing key is inside).
    pub async fn send_pagerduty(&self, event: &serde_json::Value) -> Result<(), NotifyError> {
        let payload = serde_json::to_vec(event)
            .map_err(|e| NotifyError::Invalid(format!("pagerduty event: {e}")))?;
        let url = self.endpoints.pagerduty_url.clone();
        self.post(&url, &[], payload, "PagerDuty").await
    }

    /// Creates an Opsgenie alert, or closes the one with `alias`.
    pub async fn send_opsgenie(
        &self,
        key: &str,
        alias: &str,
        close: bool,
        body: &serde_json::Value,
    ) -> Result<(), NotifyError> {
        let base = self.endpoints.opsgenie_url.trim_end_matches('/');
        let url = if close {
            let mut url = reqwest::Url::parse(&format!("{base}/v2/alerts/"))
                .map_err(|e| NotifyError::Invalid(format!("opsgenie_url: {e}")))?;
            url.path_segments_mut()
                .map_err(|_| NotifyError::Invalid("opsgenie_url cannot be a base".into()))?
                .pop_if_empty()
                .push(alias)
                .push("close");
            url.set_query(Some("identifierType=alias"));
            url.to_string()
        } else {
            format!("{base}/v2/alerts")
        };
        let payload = serde_json::to_vec(body)
            .map_err(|e| NotifyError::Invalid(format!("opsgenie body: {e}")))?;
        let auth = format!("GenieKey {key}");
        self.post(&url, &[("authorization", auth)], payload, "Opsgenie")
            .await
    }

    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        payload: Vec<u8>,
        receiver: &str,
    ) -> Result<(), NotifyError> {
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request
            .body(payload)
            .send()
            .await
            // without_url: Slack-style URLs carry their secret in the path.
            .map_err(|e| {
                // Not connected: certainly not delivered. Anything later
                // (a timeout, a connection lost before the answer): the
                // receiver may have it.
                let connected = !(e.is_connect() || e.is_builder());
                let text = describe_request_error(e);
                if connected {
                    NotifyError::Uncertain(format!("webhook: {text}"))
                } else {
                    NotifyError::Webhook(text)
                }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = super::retry_after_secs(
            response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Clock::system().now(),
        );
        let text = response.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(ERROR_BODY_CHARS).collect();
        let message = format!("HTTP {status}: {}", excerpt.trim());
        // The receiver said when it can take it: sooner would be refused
        // again (and, for a rate limit, counted against us).
        if let (Some(secs), reqwest::StatusCode::TOO_MANY_REQUESTS)
        | (Some(secs), reqwest::StatusCode::SERVICE_UNAVAILABLE) = (retry_after, status)
        {
            return Err(NotifyError::RetryAfter {
                message: format!("{receiver}: {message}"),
                secs,
            });
        }
        // 408 and 429 say "later"; other 4xx say the request itself is wrong.
        if status.is_client_error()
            && status != reqwest::StatusCode::REQUEST_TIMEOUT
            && status != reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            Err(NotifyError::Rejected(format!("{receiver}: {message}")))
        } else {
            Err(NotifyError::Webhook(format!("{receiver}: {message}")))
        }
    }
}

/// A request that got no answer, in words: reqwest's own message ("error
/// sending request") and its causes ("tcp connect error: Connection refused
/// (os error 111)"), never the URL (Slack and Teams URLs carry a secret).
pub fn describe_request_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

/// `v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}` (Standard
/// Webhooks).
pub fn sign(key: &[u8], webhook_id: &str, timestamp: i64, payload: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::sign;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example in the Standard Webhooks specification.
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
