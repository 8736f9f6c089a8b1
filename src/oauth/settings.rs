//! The `[oauth.NAME]` credentials and the `auth`/`oauth`/`sasl` keys of
//! mailboxes and `[smtp]`: types, provider defaults, and the checks serde
//! cannot make. Kept apart from `config/` so the OAuth keys live in one
//! place.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{Secret, Settings};

/// How a mailbox or the SMTP server is logged in to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    #[default]
    Password,
    Oauth2,
}

/// The SASL mechanism carrying the access token to IMAP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sasl {
    /// Google's and Microsoft's mechanism; every provider that takes tokens
    /// over IMAP speaks it.
    #[default]
    Xoauth2,
    /// RFC 7628.
    Oauthbearer,
}

impl Sasl {
    pub fn as_str(self) -> &'static str {
        match self {
            Sasl::Xoauth2 => "XOAUTH2",
            Sasl::Oauthbearer => "OAUTHBEARER",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Microsoft,
    Google,
    Generic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// App-only (Microsoft 365): one admin consent, any mailbox the service
    /// principal was given.
    ClientCredentials,
    /// A Google service account with domain-wide delegation: an RS256
    /// assertion whose `sub` is the mailbox.
    JwtBearer,
    /// A person signs in once and the refresh token is kept.
    Delegated,
}

impl Grant {
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::JwtBearer => "jwt_bearer",
            Grant::Delegated => "delegated",
        }
    }
}

/// One `[oauth.NAME]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// `microsoft`, `google` or `generic`: picks the default URLs and scope.
    pub provider: Provider,
    /// `client_credentials`, `jwt_bearer` or `delegated`.
    pub grant: Grant,
    /// Microsoft: the tenant (`agency.onmicrosoft.com` or its id); single-tenant
    /// apps must not use `/common`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The app registration's (or OAuth client's) id.
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Secret,
    /// Read the client secret from this file instead (wins over `client_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// Google `jwt_bearer`: the service account's JSON key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_file: Option<PathBuf>,
    /// The token endpoint; derived from `provider` (and `tenant`) unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// The authorization endpoint (delegated sign-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    /// The device authorization endpoint (delegated sign-in, RFC 8628).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_url: Option<String>,
    /// Space-separated scopes; derived from `provider` and `grant` unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl OAuthSettings {
    /// The token endpoint: `token_url`, else the provider's.
    pub fn token_url(&self) -> Option<String> {
        if let Some(url) = &self.token_url {
            return Some(url.clone());
        }
        match self.provider {
            Provider::Microsoft => self
                .tenant
                .as_ref()
                .map(|t| format!("https://login.microsoftonline.com/{t}/oauth2/v2.0/token")),
            Provider::Google => Some("https://oauth2.googleapis.com/token".into()),
            Provider::Generic => None,
        }
    }

    /// The sign-in page (delegated): `authorize_url`, else the provider's.
    pub fn authorize_url(&self) -> Option<String> {
        if let Some(url) = &self.authorize_url {
            return Some(url.clone());
        }
        match self.provider {
            Provider::Microsoft => self
                .tenant
                .as_ref()
                .map(|t| format!("https://login.microsoftonline.com/{t}/oauth2/v2.0/authorize")),
            Provider::Google => Some("https://accounts.google.com/o/oauth2/v2/auth".into()),
            Provider::Generic => None,
        }
    }

    /// The device authorization endpoint (`keepword oauth login`, RFC 8628):
    /// `device_url`, else Microsoft's. Google has none for mail: its device
    /// flow refuses the Gmail scope.
    pub fn device_url(&self) -> Option<String> {
        if let Some(url) = &self.device_url {
            return Some(url.clone());
        }
        match self.provider {
            Provider::Microsoft => self
                .tenant
                .as_ref()
                .map(|t| format!("https://login.microsoftonline.com/{t}/oauth2/v2.0/devicecode")),
            Provider::Google | Provider::Generic => None,
        }
    }

    /// The scope sent with every token request, refreshes included (the
    /// Microsoft v2 endpoint serves several resources and needs it each time).
    pub fn scope(&self) -> Option<String> {
        if let Some(scope) = &self.scope {
            return Some(scope.clone());
        }
        match (self.provider, self.grant) {
            (Provider::Microsoft, Grant::Delegated) => Some(
                "offline_access https://outlook.office.com/IMAP.AccessAsUser.All \
                 https://outlook.office.com/SMTP.Send"
                    .into(),
            ),
            (Provider::Microsoft, _) => Some("https://outlook.office365.com/.default".into()),
            (Provider::Google, _) => Some("https://mail.google.com/".into()),
            (Provider::Generic, _) => None,
        }
    }
}

/// Reads `client_secret_file`s; part of loading the settings.
pub fn read_secret_files(oauth: &mut BTreeMap<String, OAuthSettings>) -> Result<(), String> {
    for (name, o) in oauth.iter_mut() {
        if let Some(path) = &o.client_secret_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "config key `oauth.{name}.client_secret_file`: cannot read secret file {}: {e}",
                    path.display()
                )
            })?;
            o.client_secret = Secret::new(text.trim_end_matches(['\n', '\r']));
        }
    }
    Ok(())
}

/// What is wrong with the OAuth keys, each naming its key.
pub fn problems(settings: &Settings) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, o) in &settings.oauth {
        let key = |k: &str| format!("`oauth.{name}.{k}`");
        if o.client_id.trim().is_empty() && o.grant != Grant::JwtBearer {
            problems.push(format!("{} is empty", key("client_id")));
        }
        if o.token_url().is_none() {
            problems.push(match o.provider {
                Provider::Microsoft => format!(
                    "{} is missing: Microsoft's token URL names the tenant \
                     (e.g. `agency.onmicrosoft.com`)",
                    key("tenant")
                ),
                _ => format!(
                    "{} is missing (provider `generic` has no default)",
                    key("token_url")
                ),
            });
        }
        if let Some(url) = &o.token_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            problems.push(format!(
                "{} must be an http(s) URL (got `{url}`)",
                key("token_url")
            ));
        }
        if let Some(url) = &o.device_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                problems.push(format!(
                    "{} must be an http(s) URL (got `{url}`)",
                    key("device_url")
                ));
            }
            if o.grant != Grant::Delegated {
                problems.push(format!(
                    "{}: the device flow signs a person in; it needs grant `delegated` (got `{}`)",
                    key("device_url"),
                    o.grant.as_str()
                ));
            }
        }
        match o.grant {
            Grant::ClientCredentials => {
                if o.client_secret.is_empty() {
                    problems.push(format!(
                        "{} (or {}) is required with grant `client_credentials`",
                        key("client_secret"),
                        key("client_secret_file")
                    ));
                }
                if o.provider == Provider::Google {
                    problems.push(format!(
                        "{}: Google has no client_credentials grant for mail; use `jwt_bearer` \
                         (a service account with domain-wide delegation)",
                        key("grant")
                    ));
                }
            }
            Grant::JwtBearer => {
                if o.service_account_file.is_none() {
                    problems.push(format!(
                        "{} is required with grant `jwt_bearer`",
                        key("service_account_file")
                    ));
                }
                if o.provider == Provider::Microsoft {
                    problems.push(format!(
                        "{}: Microsoft 365 app-only access is `client_credentials`",
                        key("grant")
                    ));
                }
            }
            Grant::Delegated => {
                // A person signs in on the Connections page (authorize_url)
                // or with `keepword oauth login` (device_url): one will do.
                if o.authorize_url().is_none() && o.device_url().is_none() {
                    problems.push(format!(
                        "{} (or {}) is missing (provider `generic` has no default)",
                        key("authorize_url"),
                        key("device_url")
                    ));
                }
            }
        }
    }
    for (i, mb) in settings.mailboxes.iter().enumerate() {
        problems.extend(login_problems(
            &settings.oauth,
            &format!("mailboxes[{i}]"),
            mb.auth,
            mb.oauth.as_deref(),
        ));
        if mb.auth == AuthMethod::Password && mb.sasl.is_some() {
            problems.push(format!(
                "`mailboxes[{i}].sasl` applies only with `auth = \"oauth2\"`"
            ));
        }
    }
    problems.extend(login_problems(
        &settings.oauth,
        "smtp",
        settings.smtp.auth,
        settings.smtp.oauth.as_deref(),
    ));
    problems
}

fn login_problems(
    oauth: &BTreeMap<String, OAuthSettings>,
    at: &str,
    auth: AuthMethod,
    credential: Option<&str>,
) -> Vec<String> {
    match (auth, credential) {
        (AuthMethod::Password, None) => vec![],
        (AuthMethod::Password, Some(_)) => vec![format!(
            "`{at}.oauth` is set but `{at}.auth` is `password`: set `auth = \"oauth2\"`"
        )],
        (AuthMethod::Oauth2, None) => vec![format!(
            "`{at}.oauth` is required with `auth = \"oauth2\"` (the name of an [oauth.NAME] table)"
        )],
        (AuthMethod::Oauth2, Some(name)) if !oauth.contains_key(name) => {
            let known: Vec<&str> = oauth.keys().map(String::as_str).collect();
            vec![format!(
                "`{at}.oauth` names `{name}`, but there is no [oauth.{name}] (configured: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )]
        }
        (AuthMethod::Oauth2, Some(_)) => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Settings, String> {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        Settings::load_from(Some(f.path()), &[]).map_err(|e| e.to_string())
    }

    #[test]
    fn provider_defaults_fill_urls_and_scopes() {
        let s = load(
            "[oauth.m365]\nprovider = \"microsoft\"\ngrant = \"client_credentials\"\n\
             tenant = \"agency.onmicrosoft.com\"\nclient_id = \"id\"\nclient_secret = \"s\"\n",
        )
        .unwrap();
        let o = &s.oauth["m365"];
        assert_eq!(
            o.token_url().unwrap(),
            "https://login.microsoftonline.com/agency.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(o.scope().unwrap(), "https://outlook.office365.com/.default");
        let google = OAuthSettings {
            provider: Provider::Google,
            grant: Grant::JwtBearer,
            ..o.clone()
        };
        assert_eq!(
            google.token_url().unwrap(),
            "https://oauth2.googleapis.com/token"
        );
        assert_eq!(google.scope().unwrap(), "https://mail.google.com/");
    }

    #[test]
    fn oauth_mistakes_name_their_keys() {
        let e = load(
            "[oauth.m365]\nprovider = \"microsoft\"\ngrant = \"client_credentials\"\n\
             client_id = \"id\"\n\
             [oauth.later]\nprovider = \"microsoft\"\ngrant = \"delegated\"\ntenant = \"t\"\n\
             client_id = \"id\"\ndevice_url = \"ftp://x.test/device\"\n\
             [[mailboxes]]\nname = \"support\"\nhost = \"imap.test\"\nusername = \"u@x\"\n\
             auth = \"oauth2\"\noauth = \"m356\"\n\
             [smtp]\nauth = \"oauth2\"\n",
        )
        .unwrap_err();
        for needle in [
            "`oauth.m365.tenant`",
            "`oauth.m365.client_secret`",
            "`oauth.later.device_url` must be an http(s) URL",
            "`mailboxes[0].oauth` names `m356`",
            "`smtp.oauth` is required",
        ] {
            assert!(e.contains(needle), "{needle} missing from: {e}");
        }
        let e =
            load("[oauth.x]\nprovider = \"nope\"\ngrant = \"client_credentials\"\n").unwrap_err();
        assert!(e.contains("oauth.x.provider"), "{e}");
        let e = load(
            "[[mailboxes]]\nname = \"support\"\nhost = \"imap.test\"\nusername = \"u@x\"\n\
             sasl = \"oauthbearer\"\n",
        )
        .unwrap_err();
        assert!(e.contains("`mailboxes[0].sasl` applies only"), "{e}");
    }

    #[test]
    fn client_secrets_are_read_from_files_and_never_shown() {
        let mut secret = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut secret, b"s3cret-from-file\n").unwrap();
        let s = load(&format!(
            "[oauth.m365]\nprovider = \"microsoft\"\ngrant = \"client_credentials\"\n\
             tenant = \"t\"\nclient_id = \"id\"\nclient_secret_file = \"{}\"\n",
            secret.path().display()
        ))
        .unwrap();
        assert_eq!(s.oauth["m365"].client_secret.expose(), "s3cret-from-file");
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
