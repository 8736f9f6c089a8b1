//! Acknowledgements: the email a client gets when a new conversation opens,
//! stating from the contract what their request was filed under and when
//! they will hear back.
//!
//! The text comes from editable templates (minijinja) in
//! `config/templates/`: `acknowledgement.subject.txt`, `acknowledgement.txt`,
//! `acknowledgement.html` (auto-escaped), and `ack.slack.txt` for a reply
//! in a Slack thread (Slack's mrkdwn; every value has `&`, `<` and `>`
//! escaped as Slack asks, so a subject cannot mention `@channel` or forge a
//! link). A missing file falls back to the
//! built-in copy of the shipped one, so a deployment can override just one.

use std::path::Path;

use chrono::{DateTime, Utc};
use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use crate::contract::{Contract, channel_words, promise};

const SUBJECT: &str = "acknowledgement.subject.txt";
const TEXT: &str = "acknowledgement.txt";
const HTML: &str = "acknowledgement.html";
const SLACK: &str = "ack.slack.txt";

const BUILT_IN: [(&str, &str); 10] = [
    (
        SUBJECT,
        include_str!("../../config/templates/acknowledgement.subject.txt"),
    ),
    (
        TEXT,
        include_str!("../../config/templates/acknowledgement.txt"),
    ),
    (
        HTML,
        include_str!("../../config/templates/acknowledgement.html"),
    ),
    (
        "client-report.subject.txt",
        include_str!("../../config/templates/client-report.subject.txt"),
    ),
    (
        "client-report.txt",
        include_str!("../../config/templates/client-report.txt"),
    ),
    (
        "client-report.html",
        include_str!("../../config/templates/client-report.html"),
    ),
    (
        "weekly-digest.subject.txt",
        include_str!("../../config/templates/weekly-digest.subject.txt"),
    ),
    (
        "weekly-digest.txt",
        include_str!("../../config/templates/weekly-digest.txt"),
    ),
    (
        "weekly-digest.html",
        include_str!("../../config/templates/weekly-digest.html"),
    ),
    (SLACK, include_str!("../../config/templates/ack.slack.txt")),
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("cannot read template {path}: {reason}")]
    Read { path: String, reason: String },
}

/// The compiled templates; built once at start (a syntax error stops the
/// start, with the file and the reason).
pub struct AckTemplates {
    env: Environment<'static>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedAck {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TypeInfo {
    pub name: String,
    pub definition: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UrgentInfo {
    pub name: String,
    pub channels: Vec<String>,
    pub promise: String,
}

/// Everything a template may use.
#[derive(Debug, Clone, Serialize)]
pub struct AckContext {
    pub client_name: Option<String>,
    pub subject: String,
    pub request_type: TypeInfo,
    /// "we reply within 4 business hours (Mon–Thu 09:00–17:00, …, Europe/Berlin)"
    pub promise: String,
    /// The due, in the contract's zone: "Monday 30 November 2026, 12:00 CET".
    pub due: String,
    pub due_rfc3339: String,
    /// The request came through a channel its type does not list.
    pub mismatch: bool,
    pub right_channels: Vec<String>,
    pub urgent: Option<UrgentInfo>,
    pub contract_url: String,
    pub team: String,
    /// Who the greeting names: the sender's display name when the mail has
    /// one ("Hello Ann,"), else the client's name.
    pub greeting_name: Option<String>,
    /// The client's status page of this conversation (README, "HTTP API").
    pub status_url: Option<String>,
}

/// The name a greeting may use from a display name: trimmed, unquoted, and
/// only when it is a name (not an address, not empty, not absurdly long).
pub fn greeting_name(display: Option<&str>) -> Option<String> {
    let name = display?.trim().trim_matches(['"', '\'', ' ']).trim();
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && !name.contains('@')
        && !name.chars().any(char::is_control);
    ok.then(|| name.to_string())
}

impl AckTemplates {
    /// Files in `dir` override the built-in templates one by one.
    pub fn load(dir: Option<&Path>) -> Result<AckTemplates, TemplateError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_keep_trailing_newline(true);
        for (name, built_in) in BUILT_IN {
            let source = match dir.map(|d| d.join(name)).filter(|p| p.exists()) {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| TemplateError::Read {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?,
                None => built_in.to_string(),
            };
            env.add_template_owned(name, source)
                .map_err(|e| TemplateError::Invalid {
                    name: name.into(),
                    reason: e.to_string(),
                })?;
        }
        Ok(AckTemplates { env })
    }

    pub fn render(&self, cx: &AckContext) -> Result<RenderedAck, TemplateError> {
        self.render_parts([SUBJECT, TEXT, HTML], cx)
    }

    /// Another mail of `config/templates/`: `{base}.subject.txt`,
    /// `{base}.txt` and `{base}.html` (the client's monthly report
    /// `client-report`, the team's weekly digest `weekly-digest`).
    pub fn render_named(
        &self,
        base: &str,
        cx: &impl Serialize,
    ) -> Result<RenderedAck, TemplateError> {
        let names = [
            format!("{base}.subject.txt"),
            format!("{base}.txt"),
            format!("{base}.html"),
        ];
        self.render_parts([&names[0], &names[1], &names[2]].map(String::as_str), cx)
    }

    fn render_parts(
        &self,
        [subject, text, html]: [&str; 3],
        cx: &impl Serialize,
    ) -> Result<RenderedAck, TemplateError> {
        let render = |name: &str| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(cx))
                .map_err(|e| TemplateError::Invalid {
                    name: name.into(),
                    reason: e.to_string(),
                })
        };
        Ok(RenderedAck {
            // A subject is one line, whatever the template left around it.
            subject: render(subject)?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            text: render(text)?,
            html: render(html)?,
        })
    }

    /// The acknowledgement as a Slack message (mrkdwn), every value escaped
    /// for Slack; the template's own `<url|label>` links stay links.
    pub fn render_slack(&self, cx: &AckContext) -> Result<String, TemplateError> {
        let mut values = serde_json::to_value(cx).map_err(|e| TemplateError::Invalid {
            name: SLACK.into(),
            reason: e.to_string(),
        })?;
        escape_for_slack(&mut values);
        let text = self
            .env
            .get_template(SLACK)
            .and_then(|t| t.render(&values))
            .map_err(|e| TemplateError::Invalid {
                name: SLACK.into(),
                reason: e.to_string(),
            })?;
        Ok(text.trim_end().to_string())
    }
}

/// Slack reads `&`, `<` and `>` as its control characters in message text;
/// these three, and only these, are escaped.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn escape_for_slack(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => *s = slack_escape(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(escape_for_slack),
        serde_json::Value::Object(map) => map.values_mut().for_each(escape_for_slack),
        _ => {}
    }
}

/// The acknowledgement's content, from the contract version the conversation
/// opened under.
#[allow(clippy::too_many_arguments)]
pub fn ack_context(
    contract: &Contract,
    type_id: &str,
    client_id: Option<&str>,
    channel_id: &str,
    subject: &str,
    due: DateTime<Utc>,
    contract_url: &str,
    team: &str,
) -> AckContext {
    let request_type = contract
        .request_type(type_id)
        .unwrap_or_else(|| contract.default_request_type());
    let zone = contract.info().timezone;
    let words_of = |ids: &[String]| -> Vec<String> {
        ids.iter()
            .filter_map(|id| contract.channel(id))
            .map(channel_words)
            .collect()
    };
    let urgent = contract
        .urgent_request_type()
        .filter(|u| u.id != request_type.id)
        .map(|u| UrgentInfo {
            name: u.name.clone(),
            channels: words_of(&u.channels),
            promise: promise(contract, &u.id, client_id),
        });
    let client_name = client_id
        .and_then(|id| contract.client(id))
        .map(|c| c.name.clone());
    AckContext {
        greeting_name: client_name.clone(),
        status_url: None,
        client_name,
        subject: subject.to_string(),
        request_type: TypeInfo {
            name: request_type.name.clone(),
            definition: request_type.definition.clone(),
        },
        promise: promise(contract, &request_type.id, client_id),
        due: due
            .with_timezone(&zone)
            .format("%A %-d %B %Y, %H:%M %Z")
            .to_string(),
        due_rfc3339: due.with_timezone(&zone).to_rfc3339(),
        mismatch: !request_type.channels.iter().any(|c| c == channel_id),
        right_channels: words_of(&request_type.channels),
        urgent,
        contract_url: contract_url.to_string(),
        team: team.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Contract {
        crate::contract::parse(
            include_str!("../../config/contract.toml"),
            "config/contract.toml",
        )
        .unwrap()
    }

    #[test]
    fn shipped_templates_render_the_promise_and_the_due() {
        let c = shipped();
        let due = DateTime::parse_from_rfc3339("2026-11-30T11:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let cx = ack_context(
            &c,
            "question",
            Some("acme"),
            "email",
            "Footer <b>text</b>",
            due,
            "https://support.example.com/contract",
            "Northwind",
        );
        let t = AckTemplates::load(None).unwrap();
        let r = t.render(&cx).unwrap();
        assert_eq!(r.subject, "Re: Footer <b>text</b> [we have your request]");
        assert!(
            r.text.contains("Questions and change requests"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("2 business hours"),
            "ACME's override: {}",
            r.text
        );
        assert!(
            r.text.contains("Monday 30 November 2026, 12:00 CET"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("+49 30 1234567"),
            "the urgent channel: {}",
            r.text
        );
        assert!(r.text.contains("https://support.example.com/contract"));
        assert!(
            !r.text.contains("next time"),
            "email is a right channel for questions"
        );
        assert!(
            r.html
                .contains("<strong>Questions and change requests</strong>")
        );
    }

    #[test]
    fn the_greeting_names_the_person_and_the_status_link_is_given() {
        let mut cx = ack_context(
            &shipped(),
            "question",
            Some("acme"),
            "email",
            "Hi",
            Utc::now(),
            "u",
            "t",
        );
        let t = AckTemplates::load(None).unwrap();
        let r = t.render(&cx).unwrap();
        assert!(r.text.starts_with("Hello ACME Corp,"), "{}", r.text);
        assert!(!r.text.contains("/status/"), "no link without a token");
        cx.greeting_name = greeting_name(Some(" \"Ann\" "));
        cx.status_url = Some("https://s.example/status/abc".into());
        let r = t.render(&cx).unwrap();
        assert!(r.text.starts_with("Hello Ann,"), "{}", r.text);
        assert!(
            r.text.contains("https://s.example/status/abc"),
            "{}",
            r.text
        );
        assert!(r.html.contains("Hello Ann,"), "{}", r.html);
        assert!(
            r.html
                .contains("href=\"https:&#x2f;&#x2f;s.example&#x2f;status&#x2f;abc\"")
        );
        for not_a_name in [
            None,
            Some(""),
            Some("  "),
            Some("ann@acme.com"),
            Some("a\nb"),
        ] {
            assert_eq!(greeting_name(not_a_name), None, "{not_a_name:?}");
        }
    }

    #[test]
    fn wrong_channel_is_named_and_html_is_escaped() {
        let c = shipped();
        let cx = ack_context(
            &c,
            "urgent",
            None,
            "email",
            "Down",
            Utc::now(),
            "https://x/contract",
            "<Team>",
        );
        assert!(cx.mismatch);
        let r = AckTemplates::load(None).unwrap().render(&cx).unwrap();
        assert!(r.text.contains("next time"), "{}", r.text);
        assert!(
            r.text.contains("pager (+49 30 1234567 (24/7))"),
            "{}",
            r.text
        );
        assert!(r.html.contains("&lt;Team&gt;"), "escaped in HTML");
        assert!(r.text.contains("<Team>"), "verbatim in text");
        assert!(r.text.contains("around the clock"), "{}", r.text);
    }

    #[test]
    fn the_slack_acknowledgement_names_slack_and_escapes_values() {
        let text = "[channels.slack]\nkind = \"slack\"\ndescription = \"our shared channel\"\n";
        let source = include_str!("../../config/contract.toml")
            .replace("[channels.email]", &format!("{text}\n[channels.email]"));
        let c = crate::contract::parse(&source, "contract.toml").unwrap();
        let due = DateTime::parse_from_rfc3339("2026-11-30T11:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut cx = ack_context(
            &c,
            "question",
            Some("acme"),
            "slack",
            "<!channel> help & more",
            due,
            "https://support.example.com/contract?a=1&b=2",
            "North <wind>",
        );
        cx.status_url = Some("https://s.example/status/abc".into());
        let t = AckTemplates::load(None).unwrap();
        let r = t.render_slack(&cx).unwrap();
        assert!(r.contains("*Questions and change requests*"), "{r}");
        assert!(r.contains("Monday 30 November 2026, 12:00 CET"), "{r}");
        assert!(
            r.contains("<https://s.example/status/abc|your request's status page>"),
            "{r}"
        );
        assert!(r.contains("a=1&amp;b=2"), "{r}");
        assert!(r.contains("North &lt;wind&gt;"), "{r}");
        assert!(!r.contains("<!channel>"), "{r}");
        assert!(
            r.contains("next time"),
            "Slack is not a channel of questions in the shipped contract: {r}"
        );
        let slack = c.channel("slack").unwrap();
        assert_eq!(
            crate::contract::channel_words(slack),
            "Slack, in our shared channel"
        );
    }

    #[test]
    fn a_template_file_overrides_the_built_in_one_and_errors_name_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SUBJECT), "Got it: {{ subject }}").unwrap();
        let t = AckTemplates::load(Some(dir.path())).unwrap();
        let cx = ack_context(
            &shipped(),
            "question",
            None,
            "email",
            "Hi",
            Utc::now(),
            "u",
            "t",
        );
        assert_eq!(t.render(&cx).unwrap().subject, "Got it: Hi");
        std::fs::write(dir.path().join(TEXT), "{% if %}").unwrap();
        let e = AckTemplates::load(Some(dir.path()))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(TEXT), "{e}");
    }
}
