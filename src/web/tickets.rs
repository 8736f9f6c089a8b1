//! `/webhooks/jira`, `/webhooks/linear`, `/webhooks/basecamp/{secret}` and
//! `/webhooks/slack`:
//! thin front ends on the one intake. Each checks its source's credential
//! (before reading the body where a header or the URL allows it, and always
//! before parsing), lets `ingest` map the payload, and hands the event to
//! [`crate::service::Intake::submit_event`] through [`api::record`].

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::AppState;
use super::api;
use super::error::{WebError, blocking};
use crate::config::TicketWebhookSettings;
use crate::contract::Contract;
use crate::ingest::webhook::{self as ingest, EventError, TicketOutcome, WebhookAuthError};

/// Path of the Basecamp webhook; its last segment is the secret.
const BASECAMP_PREFIX: &str = "/webhooks/basecamp/";

/// A webhook source: its name (in metric labels and messages) and the
/// bounded label of the events it ignores.
#[derive(Clone, Copy)]
pub(super) struct Source {
    pub name: &'static str,
    pub label: fn(&str) -> &'static str,
}

pub(super) const GITHUB: Source = Source {
    name: "github",
    label: super::github_event_label,
};
const JIRA: Source = Source {
    name: "jira",
    label: ingest::jira_event_label,
};
const LINEAR: Source = Source {
    name: "linear",
    label: ingest::linear_event_label,
};
const BASECAMP: Source = Source {
    name: "basecamp",
    label: ingest::basecamp_event_label,
};
const SLACK: Source = Source {
    name: "slack",
    label: ingest::slack_event_label,
};

/// `POST /webhooks/slack`: the signature and the timestamp's age before
/// anything is parsed, then `url_verification`'s challenge, or the message
/// through the one intake. Slack retries anything but a timely 2xx, so
/// every accepted request is answered 200 once stored (or ignored).
pub(super) async fn slack(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let cfg = state
        .auth
        .slack
        .as_ref()
        .ok_or_else(|| not_configured(SLACK))?;
    let body = api::read_body(&req, payload).await?;
    let now = state.reads.now();
    let checked = ingest::verify_slack(
        cfg.signing_secret.expose().as_bytes(),
        &body,
        header(&req, ingest::SLACK_SIGNATURE_HEADER),
        header(&req, ingest::SLACK_TIMESTAMP_HEADER),
        now,
    );
    refuse(&state, SLACK, checked)?;
    if let Some(challenge) = ingest::slack_challenge(&body) {
        return Ok(HttpResponse::Ok().json(json!({ "challenge": challenge })));
    }
    if let Some(retry) = header(&req, ingest::SLACK_RETRY_HEADER) {
        tracing::debug!(retry, "Slack redelivers an event");
    }
    let channel = state.slack_channel(cfg.channel.as_deref());
    let team = ingest::SlackTeam {
        team_ids: &cfg.team_ids,
    };
    let parse = |channel: &str, contract: &Contract| {
        ingest::parse_slack(&body, channel, team, contract, now)
    };
    let mut answer = deliver(&state, SLACK, Some(&channel), &body, now, parse).await?;
    *answer.status_mut() = actix_web::http::StatusCode::OK;
    Ok(answer)
}

pub(super) async fn jira(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let name = ingest::JIRA_SIGNATURE_HEADER;
    let cfg = state.auth.jira.as_ref();
    let verify = ingest::verify_jira_signature;
    let (cfg, body) = signed(&state, JIRA, cfg, &req, payload, name, verify).await?;
    let now = state.reads.now();
    let webhook_id = header(&req, "X-Atlassian-Webhook-Identifier");
    let parse = |channel: &str, contract: &Contract| {
        ingest::parse_jira(&body, webhook_id, channel, contract, now)
    };
    deliver(&state, JIRA, cfg.channel.as_deref(), &body, now, parse).await
}

pub(super) async fn linear(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let now = state.reads.now();
    let name = ingest::LINEAR_SIGNATURE_HEADER;
    let cfg = state.auth.linear.as_ref();
    let verify = |secret: &[u8], body: &[u8], signature: Option<&str>| {
        ingest::verify_linear(secret, body, signature, now)
    };
    let (cfg, body) = signed(&state, LINEAR, cfg, &req, payload, name, verify).await?;
    let parse =
        |channel: &str, contract: &Contract| ingest::parse_linear(&body, channel, contract, now);
    deliver(&state, LINEAR, cfg.channel.as_deref(), &body, now, parse).await
}

/// The settings of a source that signs its bodies, and the body, once the
/// signature in header `name` holds.
async fn signed<'s>(
    state: &AppState,
    source: Source,
    cfg: Option<&'s TicketWebhookSettings>,
    req: &HttpRequest,
    payload: web::Payload,
    name: &str,
    verify: impl FnOnce(&[u8], &[u8], Option<&str>) -> Result<(), WebhookAuthError>,
) -> Result<(&'s TicketWebhookSettings, web::Bytes), WebError> {
    let cfg = cfg.ok_or_else(|| not_configured(source))?;
    let body = api::read_body(req, payload).await?;
    let secret = cfg.webhook_secret.expose().as_bytes();
    refuse(state, source, verify(secret, &body, header(req, name)))?;
    Ok((cfg, body))
}

pub(super) async fn basecamp(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let cfg = state
        .auth
        .basecamp
        .as_ref()
        .ok_or_else(|| not_configured(BASECAMP))?;
    // Checked by `before_body` too; again here so the handler stands alone.
    basecamp_secret(&state, req.path())?;
    let body = api::read_body(&req, payload).await?;
    let now = state.reads.now();
    let companies = &cfg.company_ids;
    let parse = |channel: &str, contract: &Contract| {
        ingest::parse_basecamp(&body, channel, companies, contract, now)
    };
    deliver(&state, BASECAMP, cfg.channel.as_deref(), &body, now, parse).await
}

/// Refusals the HTTP edge can make before a byte of the body is read: a
/// source that is not configured, a signature header of the wrong shape, a
/// wrong Basecamp URL secret. `None` for any other request.
pub(super) fn before_body(
    state: &AppState,
    req: &actix_web::dev::ServiceRequest,
) -> Option<WebError> {
    if req.method() != Method::POST {
        return None;
    }
    let path = req.path();
    let shape = |name: &'static str, prefix: &'static str| {
        let value = req.headers().get(name).and_then(|v| v.to_str().ok());
        ingest::hmac_header_digest(name, prefix, value).err()
    };
    let (source, refused) = if path == "/webhooks/jira" {
        match &state.auth.jira {
            None => return Some(not_configured(JIRA)),
            Some(_) => (JIRA, shape(ingest::JIRA_SIGNATURE_HEADER, "sha256=")),
        }
    } else if path == "/webhooks/linear" {
        match &state.auth.linear {
            None => return Some(not_configured(LINEAR)),
            Some(_) => (LINEAR, shape(ingest::LINEAR_SIGNATURE_HEADER, "")),
        }
    } else if path == "/webhooks/slack" {
        match &state.auth.slack {
            None => return Some(not_configured(SLACK)),
            Some(_) => {
                let value = req
                    .headers()
                    .get(ingest::SLACK_SIGNATURE_HEADER)
                    .and_then(|v| v.to_str().ok());
                (SLACK, ingest::slack_signature_digest(value).err())
            }
        }
    } else if path.starts_with(BASECAMP_PREFIX) {
        return basecamp_secret(state, path).err();
    } else {
        return None;
    };
    refused.map(|e| rejected_credential(state, source, e))
}

fn basecamp_secret(state: &AppState, path: &str) -> Result<(), WebError> {
    let cfg = state
        .auth
        .basecamp
        .as_ref()
        .ok_or_else(|| not_configured(BASECAMP))?;
    let presented = path.strip_prefix(BASECAMP_PREFIX).unwrap_or_default();
    ingest::verify_basecamp_secret(cfg.webhook_secret.expose().as_bytes(), presented)
        .map_err(|e| rejected_credential(state, BASECAMP, e))
}

fn header<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A source without its section: Jira and Linear refuse every signature
/// (401, as GitHub's does without a secret); Basecamp's URL names nothing.
fn not_configured(source: Source) -> WebError {
    match source.name {
        "basecamp" => WebError::NotFound(BASECAMP_UNKNOWN.to_owned()),
        "slack" => WebError::BadSignature(
            "no Slack signing secret is configured: set [slack] signing_secret".to_owned(),
        ),
        name => WebError::BadSignature(format!(
            "no webhook secret is configured for {name}: set [{name}] webhook_secret"
        )),
    }
}

/// The one answer to a Basecamp URL that is not the webhook's, configured
/// or not: it must not tell a guesser which part was wrong.
const BASECAMP_UNKNOWN: &str = "no Basecamp webhook at this URL";

/// Counts a refused credential. A wrong Basecamp URL is a 404, as for a path
/// that does not exist: the URL is the secret, and a different answer would
/// confirm a guess of the prefix.
fn rejected_credential(state: &AppState, source: Source, e: WebhookAuthError) -> WebError {
    state
        .metrics
        .ingest_rejected
        .with_label_values(&[source.name, "signature"])
        .inc();
    match e {
        WebhookAuthError::WrongSecret => WebError::NotFound(BASECAMP_UNKNOWN.to_owned()),
        other => WebError::BadSignature(other.to_string()),
    }
}

fn refuse(
    state: &AppState,
    source: Source,
    checked: Result<(), WebhookAuthError>,
) -> Result<(), WebError> {
    checked.map_err(|e| rejected_credential(state, source, e))
}

/// Counts input refused as unreadable under `source`; the reason label.
pub(super) fn count_unreadable(state: &AppState, source: &str, e: &EventError) -> &'static str {
    let reason = match e {
        EventError::Malformed(_) => "malformed",
        EventError::Invalid(_) => "invalid",
    };
    state
        .metrics
        .ingest_rejected
        .with_label_values(&[source, reason])
        .inc();
    reason
}

/// What every ticket source does once its credential holds: a payload it
/// cannot read is kept raw in rejected input (the sender will not send it
/// again) and answered with every bad field; a delivery of no use is 202
/// and counted under a bounded label; an event goes to the intake.
pub(super) async fn deliver(
    state: &AppState,
    source: Source,
    channel: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
    parse: impl FnOnce(&str, &Contract) -> Result<TicketOutcome, EventError>,
) -> Result<HttpResponse, WebError> {
    let channel = state.ticket_channel(channel);
    let parsed = parse(&channel, &state.contract.current().contract);
    match parsed {
        Err(e) => {
            let reason = count_unreadable(state, source.name, &e);
            let (intake, raw) = (state.intake.clone(), body.to_vec());
            let detail = format!("{}: {e}", source.name);
            blocking(move || intake.keep_rejected(&channel, reason, &detail, &raw, now)).await?;
            Err(e.into())
        }
        Ok(TicketOutcome::Ignored {
            event,
            action,
            reason,
        }) => {
            state
                .metrics
                .webhook_ignored
                .with_label_values(&[source.name, (source.label)(&event)])
                .inc();
            Ok(HttpResponse::Accepted().json(json!({
                "ignored": true, "event": event, "action": action, "reason": reason,
            })))
        }
        Ok(TicketOutcome::Event(event)) => api::record(state, event, body, now).await,
    }
}
