//! Which request type a new conversation is (README, "The contract"): rules in contract
//! order, the first match wins, else the default type.

use crate::contract::{Contract, RequestType};

/// What classification looks at, as the ingest adapters extracted it.
#[derive(Debug, Clone, Copy)]
pub struct ClassifyInput<'a> {
    /// The contract's channel id the request came through.
    pub channel: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// A ticket's priority field.
    pub priority: Option<&'a str>,
    /// Addresses the message was sent to (`a@b` or `Name <a@b>`).
    pub recipients: &'a [String],
    pub client_id: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub request_type: String,
    /// Why, for people: "urgent: keyword `outage` in subject", "question: default".
    pub rule: String,
    /// The type's `channels` do not include the channel it came through.
    pub channel_mismatch: bool,
}

/// Within a type the rules are tried as priority, recipient, keywords in the
/// subject, keywords in the body, client; keywords match whole words or
/// phrases, case-insensitively, whatever punctuation or spacing separates
/// the words in the text.
pub fn classify(contract: &Contract, input: &ClassifyInput) -> Classification {
    let subject = words(input.subject);
    let body = words(input.body);
    let recipients: Vec<String> = input.recipients.iter().map(|r| address(r)).collect();
    for request_type in contract.request_types() {
        if let Some(why) = matches(request_type, input, &subject, &body, &recipients) {
            return classification(request_type, format!("{}: {why}", request_type.id), input);
        }
    }
    let default = contract.default_request_type();
    classification(default, format!("{}: default", default.id), input)
}

fn classification(t: &RequestType, rule: String, input: &ClassifyInput) -> Classification {
    Classification {
        request_type: t.id.clone(),
        rule,
        channel_mismatch: !t.channels.iter().any(|c| c == input.channel),
    }
}

fn matches(
    t: &RequestType,
    input: &ClassifyInput,
    subject: &[String],
    body: &[String],
    recipients: &[String],
) -> Option<String> {
    let rules = &t.match_rules;
    if let Some(priority) = input.priority.map(str::trim)
        && let Some(p) = rules
            .priorities
            .iter()
            .find(|p| p.trim().to_lowercase() == priority.to_lowercase())
    {
        return Some(format!("priority `{p}`"));
    }
    if let Some(r) = rules
        .recipients
        .iter()
        .find(|r| recipients.contains(&r.to_lowercase()))
    {
        return Some(format!("recipient `{r}`"));
    }
    for (text, place) in [(subject, "subject"), (body, "body")] {
        if let Some(k) = rules
            .keywords
            .iter()
            .find(|k| contains_phrase(text, &words(k)))
        {
            return Some(format!("keyword `{k}` in {place}"));
        }
    }
    if let Some(client) = input.client_id
        && let Some(c) = rules.clients.iter().find(|c| *c == client)
    {
        return Some(format!("client `{c}`"));
    }
    None
}

/// Lower-cased words: runs of letters and digits.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn contains_phrase(text: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && text.windows(phrase.len()).any(|w| w == phrase)
}

/// `Name <a@b>` → `a@b`, lower-cased.
fn address(recipient: &str) -> String {
    let r = recipient.trim();
    let inner = match (r.rfind('<'), r.rfind('>')) {
        (Some(open), Some(close)) if open < close => &r[open + 1..close],
        _ => r,
    };
    inner.trim().to_lowercase()
}
