//! Every problem in the settings reported, not only the first: figment
//! stops at the first error, so a wrong value is noted, replaced by its
//! default (an unknown key dropped), and the settings read again, until
//! nothing more is wrong. Each problem names the key and where it came
//! from (the file or a `KEEPWORD_*` variable), never a secret's value.

use std::path::PathBuf;

use figment::value::Dict;

/// Where the values came from, to name the place a mistake is in.
pub(super) struct Sources {
    pub(super) file: Option<PathBuf>,
    /// Dotted key and the variable that set it, in merge order.
    pub(super) env: Vec<(String, String)>,
}

impl Sources {
    /// The variable that set `key` (or a key under it); the last one wins,
    /// as in the merge.
    fn env_var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(dotted, _)| {
                dotted == key
                    || dotted
                        .strip_prefix(key)
                        .is_some_and(|rest| rest.starts_with('.'))
                    || key
                        .strip_prefix(dotted.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            .map(|(_, var)| var.as_str())
    }
}

/// Keys whose value is text: those whose default is a string, and the
/// secrets and paths whose default is absent.
pub(super) fn is_text_key(defaults: &Dict, dotted: &str) -> bool {
    const TEXT_WITHOUT_DEFAULT: &[&str] = &[
        "dashboard_password_file",
        "metrics_token_file",
        "github.webhook_secret_file",
        "github.channel",
        "jira.webhook_secret_file",
        "jira.channel",
        "linear.webhook_secret_file",
        "linear.channel",
        "basecamp.webhook_secret_file",
        "basecamp.channel",
        "slack.signing_secret_file",
        "slack.bot_token_file",
        "slack.channel",
        "smtp.password_file",
        "webhooks.signing_secret_file",
    ];
    if TEXT_WITHOUT_DEFAULT.contains(&dotted) || is_secret_key(dotted) {
        return true;
    }
    let mut parts = dotted.split('.');
    let first = parts.next().unwrap_or_default();
    let mut value = defaults.get(first);
    for part in parts {
        value = value.and_then(|v| v.as_dict()).and_then(|d| d.get(part));
    }
    matches!(value, Some(figment::value::Value::String(..)))
}

/// Keys holding secrets: their values never appear in an error.
fn is_secret_key(dotted: &str) -> bool {
    let mut parts = dotted.split('.');
    let first = parts.next().unwrap_or_default();
    let last = dotted.rsplit('.').next().unwrap_or_default();
    matches!(
        first,
        "api_tokens" | "dashboard_password" | "wall_tokens" | "metrics_token"
    ) || matches!(
        last,
        "password" | "webhook_secret" | "signing_secret" | "client_secret" | "bot_token"
    )
}

pub(super) fn describe_figment_error(e: figment::Error, sources: &Sources) -> String {
    e.into_iter()
        .map(|e| describe_one(&e, sources))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One mistake, named the way the user wrote it: the environment variable,
/// or the key and the file. Never figment's internal provider names, and
/// never a secret's value.
pub(super) fn describe_one(e: &figment::Error, sources: &Sources) -> String {
    let key = e.path.join(".");
    let what = if is_secret_key(&key) {
        match &e.kind {
            figment::error::Kind::Message(m) => m.clone(),
            _ => "must be a string".into(),
        }
    } else {
        e.kind.to_string()
    };
    if key.is_empty() {
        return match &sources.file {
            Some(f) => format!("{}: {what}", f.display()),
            None => what,
        };
    }
    match (sources.env_var(&key), &sources.file) {
        (Some(var), _) => format!("environment variable `{var}` (key `{key}`): {what}"),
        (None, Some(f)) => format!("key `{key}` in {}: {what}", f.display()),
        (None, None) => format!("key `{key}`: {what}"),
    }
}

/// Takes the value `e` is about out of the way: back to its default, or
/// removed when it has none. `false` when there is nothing to change (the
/// same error would come back).
pub(super) fn repair(merged: &mut Dict, defaults: &Dict, e: &figment::Error) -> bool {
    use figment::value::Value;
    fn slot<'a, 'p>(dict: &'a mut Dict, path: &'p [String]) -> Option<(&'a mut Value, &'p String)> {
        let (last, parents) = path.split_last()?;
        let (first, rest) = parents.split_first()?;
        let mut value = dict.get_mut(first)?;
        for part in rest {
            value = match value {
                Value::Dict(_, d) => d.get_mut(part)?,
                Value::Array(_, a) => a.get_mut(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some((value, last))
    }
    fn default_at(defaults: &Dict, path: &[String]) -> Option<Value> {
        let (first, rest) = path.split_first()?;
        let mut value = defaults.get(first)?;
        for part in rest {
            value = value.as_dict()?.get(part)?;
        }
        Some(value.clone())
    }
    if matches!(e.kind, figment::error::Kind::MissingField(_)) {
        // A required field of a list entry (a mailbox without a host):
        // nothing sensible to put there, so drop the entry.
        return match e.path.split_last() {
            Some((_, parent)) if parent.len() >= 2 => remove(merged, parent),
            _ => false,
        };
    }
    if let Some(default) = default_at(defaults, &e.path) {
        let changed = match e.path.as_slice() {
            [only] => merged.insert(only.clone(), default.clone()).as_ref() != Some(&default),
            _ => match slot(merged, &e.path) {
                Some((Value::Dict(_, d), last)) => {
                    d.insert(last.clone(), default.clone()).as_ref() != Some(&default)
                }
                _ => false,
            },
        };
        if changed {
            return true;
        }
    }
    remove(merged, &e.path)
}

fn remove(merged: &mut Dict, path: &[String]) -> bool {
    use figment::value::Value;
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut container: Option<&mut Value> = None;
    for (i, part) in parents.iter().enumerate() {
        let next = if i == 0 {
            merged.get_mut(part)
        } else {
            match container.take() {
                Some(Value::Dict(_, d)) => d.get_mut(part),
                Some(Value::Array(_, a)) => part.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                _ => None,
            }
        };
        match next {
            Some(v) => container = Some(v),
            None => return false,
        }
    }
    match container {
        None => merged.remove(last).is_some(),
        Some(Value::Dict(_, d)) => d.remove(last).is_some(),
        Some(Value::Array(_, a)) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        Some(_) => false,
    }
}
