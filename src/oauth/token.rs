//! Access tokens: taken from the token endpoint, kept in memory only, one
//! request at a time per credential and account, renewed before they run
//! out, and dropped when a server refuses one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use prometheus::{IntGaugeVec, Opts};
use serde::Deserialize;

use super::settings::{Grant, OAuthSettings};
use super::{OAuthError, jwt};
use crate::config::Secret;

/// How early a token is renewed: five minutes, or half its life for tokens
/// shorter than ten minutes (renewing a three-minute token five minutes
/// early would mean a token request before every login).
const REFRESH_EARLY: Duration = Duration::from_secs(5 * 60);

/// An access token and when it runs out.
#[derive(Clone)]
pub struct AccessToken {
    pub secret: Secret,
    pub expires_at: SystemTime,
    /// When it was issued: with `expires_at`, its lifetime.
    pub issued_at: SystemTime,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &DateTime::<Utc>::from(self.expires_at))
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// The instant after which the token is renewed rather than used.
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .expires_at
            .duration_since(self.issued_at)
            .unwrap_or_default();
        self.expires_at - REFRESH_EARLY.min(life / 2)
    }

    pub fn fresh_at(&self, now: SystemTime) -> bool {
        now < self.renew_at()
    }
}

/// What the Connections page and `oauth check` show of one credential and
/// account.
#[derive(Debug, Clone, Default)]
pub struct GrantStatus {
    /// The current token's expiry, while one is held.
    pub valid_until: Option<DateTime<Utc>>,
    /// The provider answered `invalid_grant`: a person must act.
    pub needs_sign_in: bool,
    /// The last failure in words, with the fix where known.
    pub last_error: Option<String>,
}

/// `oauth_grant_valid{credential,account}`: 1 while tokens are issued, 0
/// after `invalid_grant`. No prefix: the app's registry adds `keepword_`.
#[derive(Clone)]
pub struct OAuthMetrics {
    pub grant_valid: IntGaugeVec,
    pub token_requests: prometheus::IntCounterVec,
}

impl OAuthMetrics {
    pub fn new() -> OAuthMetrics {
        OAuthMetrics {
            grant_valid: IntGaugeVec::new(
                Opts::new(
                    "oauth_grant_valid",
                    "1 while the OAuth grant of the credential and account yields tokens; 0 once \
                     the provider answered invalid_grant (someone must sign in again).",
                ),
                &["credential", "account"],
            )
            .expect("valid metric"),
            token_requests: prometheus::IntCounterVec::new(
                Opts::new(
                    "oauth_token_requests_total",
                    "Requests to a token endpoint, by credential and outcome (ok, error).",
                ),
                &["credential", "outcome"],
            )
            .expect("valid metric"),
        }
    }

    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.grant_valid.clone()),
            Box::new(self.token_requests.clone()),
        ]
    }
}

impl Default for OAuthMetrics {
    fn default() -> Self {
        OAuthMetrics::new()
    }
}

type Key = (String, String);

/// One credential and account's token. The held token is read without
/// waiting; `refresh` is held across a token request, so concurrent callers
/// wait for the one request, and a renewal in the background never makes a
/// caller that finds a fresh token wait.
#[derive(Default)]
struct Slot {
    held: Mutex<Option<AccessToken>>,
    refresh: tokio::sync::Mutex<()>,
}

impl Slot {
    fn current(&self) -> Option<AccessToken> {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn fresh(&self, now: SystemTime) -> Option<AccessToken> {
        self.current().filter(|t| t.fresh_at(now))
    }

    fn set(&self, token: Option<AccessToken>) {
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = token;
    }
}

/// How long before a held token would go stale [`TokenSource::keep_fresh`]
/// renews it (a quarter of its fresh life for short tokens).
const RENEW_AHEAD: Duration = Duration::from_secs(60);

/// After a failed renewal in the background, the next try; callers that
/// need a token meanwhile ask themselves once it goes stale.
const RENEW_RETRY: Duration = Duration::from_secs(30);

/// How often a poller waiting for a sign-in looks for a grant stored by
/// another process.
pub const GRANT_STORE_CHECK: Duration = Duration::from_secs(5);

/// Every configured credential's tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    credentials: BTreeMap<String, Credential>,
    http: reqwest::Client,
    /// One slot per credential and account.
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
    status: Mutex<HashMap<Key, GrantStatus>>,
    metrics: OAuthMetrics,
    /// Refresh tokens of delegated grants; `None` when no credential is
    /// delegated.
    grants: Option<super::store::GrantStore>,
    /// Woken when someone signs in, so a poller waiting out its
    /// needs-sign-in pause tries again at once.
    signed_in: tokio::sync::Notify,
}

/// A credential ready to ask for tokens.
struct Credential {
    settings: OAuthSettings,
    token_url: String,
    scope: Option<String>,
    service_account: Option<jwt::ServiceAccount>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    /// Delegated grants: a new refresh token when the provider rotates it.
    #[serde(default)]
    refresh_token: Option<String>,
}

/// What a device authorization endpoint answers (RFC 8628 section 3.2).
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceCode {
    pub device_code: String,
    /// What the person types.
    pub user_code: String,
    /// Where the person types it; Google's older endpoints say
    /// `verification_url`.
    #[serde(alias = "verification_url")]
    pub verification_uri: String,
    /// The same page with the code filled in, where the provider offers it.
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    /// Seconds the code stays valid.
    pub expires_in: u64,
    /// Seconds between polls; five unless the provider says otherwise.
    #[serde(default = "default_interval")]
    pub interval: u64,
}

fn default_interval() -> u64 {
    5
}

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn device_refusal(credential: &str, error: &str) -> OAuthError {
    OAuthError::Refused {
        credential: credential.to_string(),
        status: 400,
        error: error.to_string(),
        description: if error == "access_denied" {
            "the sign-in was declined".into()
        } else {
            "nobody signed in before the code expired: run the command again".into()
        },
    }
}

fn no_refresh_token(credential: &str) -> OAuthError {
    OAuthError::Refused {
        credential: credential.to_string(),
        status: 200,
        error: "no refresh token".into(),
        description: "the provider issued no refresh token: the scope needs offline_access \
                      (Microsoft), or access_type=offline (Google)"
            .into(),
    }
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl TokenSource {
    /// Reads what the credentials need (service account keys) up front, so
    /// a broken key file stops the start rather than the first login.
    pub fn new(
        settings: &BTreeMap<String, OAuthSettings>,
        metrics: OAuthMetrics,
    ) -> Result<TokenSource, OAuthError> {
        Self::with_grants(settings, metrics, None)
    }

    /// [`TokenSource::new`] with the store of delegated grants.
    pub fn with_grants(
        settings: &BTreeMap<String, OAuthSettings>,
        metrics: OAuthMetrics,
        grants: Option<super::store::GrantStore>,
    ) -> Result<TokenSource, OAuthError> {
        let mut credentials = BTreeMap::new();
        for (name, s) in settings {
            let token_url = s.token_url().ok_or_else(|| OAuthError::Config {
                credential: name.clone(),
                reason: "no token_url".into(),
            })?;
            let service_account = match (s.grant, &s.service_account_file) {
                (Grant::JwtBearer, Some(path)) => Some(jwt::ServiceAccount::read(path).map_err(
                    |reason| OAuthError::Config {
                        credential: name.clone(),
                        reason: format!("service_account_file {}: {reason}", path.display()),
                    },
                )?),
                _ => None,
            };
            credentials.insert(
                name.clone(),
                Credential {
                    scope: s.scope(),
                    token_url,
                    service_account,
                    settings: s.clone(),
                },
            );
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("keepword/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OAuthError::Config {
                credential: String::new(),
                reason: e.to_string(),
            })?;
        Ok(TokenSource {
            inner: Arc::new(Inner {
                credentials,
                http,
                slots: Mutex::new(HashMap::new()),
                status: Mutex::new(HashMap::new()),
                metrics,
                grants,
                signed_in: tokio::sync::Notify::new(),
            }),
        })
    }

    pub fn metrics(&self) -> &OAuthMetrics {
        &self.inner.metrics
    }

    /// A token for `account` under `credential`: the held one while fresh,
    /// else a new one. Concurrent callers for the same pair share one
    /// request.
    pub async fn token(&self, credential: &str, account: &str) -> Result<AccessToken, OAuthError> {
        let slot = self.slot(credential, account);
        if let Some(t) = slot.fresh(SystemTime::now()) {
            return Ok(t);
        }
        let _refreshing = slot.refresh.lock().await;
        // Another caller may have taken one while this one waited.
        if let Some(t) = slot.fresh(SystemTime::now()) {
            return Ok(t);
        }
        slot.set(None);
        let got = self.request(credential, account).await;
        self.record(credential, account, &slot, got)
    }

    /// The held token while it is fresh; never asks the provider.
    pub fn held_fresh(&self, credential: &str, account: &str) -> Option<AccessToken> {
        self.slot(credential, account).fresh(SystemTime::now())
    }

    /// Renews every held token shortly before it would go stale, so no
    /// login or send waits for a token request: the IMAP login after a
    /// dropped connection and the SMTP send of an acknowledgement find a
    /// fresh one. A token nobody asked for is never requested; one that
    /// failed is left to its callers.
    pub async fn keep_fresh(&self, shutdown: tokio_util::sync::CancellationToken) {
        let mut retry_at: HashMap<Key, SystemTime> = HashMap::new();
        loop {
            let now = SystemTime::now();
            let slots: Vec<(Key, Arc<Slot>)> = self
                .inner
                .slots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut next = now + Duration::from_secs(60);
            for (key, slot) in slots {
                let Some(t) = slot.current() else { continue };
                let fresh_life = t.renew_at().duration_since(t.issued_at).unwrap_or_default();
                let due = (t.renew_at() - RENEW_AHEAD.min(fresh_life / 4))
                    .max(retry_at.get(&key).copied().unwrap_or(now));
                if due > now {
                    next = next.min(due);
                    continue;
                }
                let _refreshing = slot.refresh.lock().await;
                let still = slot
                    .current()
                    .is_some_and(|c| c.secret.expose() == t.secret.expose());
                if !still {
                    continue;
                }
                let got = self.request(&key.0, &key.1).await;
                match self.record(&key.0, &key.1, &slot, got) {
                    Ok(_) => {
                        retry_at.remove(&key);
                    }
                    Err(e) => {
                        tracing::warn!(credential = %key.0, account = %key.1, error = %e,
                            "renewing an OAuth token ahead of time failed; the held one stays until it goes stale");
                        retry_at.insert(key, SystemTime::now() + RENEW_RETRY);
                    }
                }
                next = SystemTime::now();
            }
            let wait = next.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Notes a token request's outcome: the held token, the grant's state
    /// and `oauth_grant_valid`.
    fn record(
        &self,
        credential: &str,
        account: &str,
        slot: &Slot,
        got: Result<AccessToken, OAuthError>,
    ) -> Result<AccessToken, OAuthError> {
        let key = (credential.to_string(), account.to_string());
        let valid = self
            .inner
            .metrics
            .grant_valid
            .with_label_values(&[credential, account]);
        let mut status = self.inner.status.lock().unwrap_or_else(|e| e.into_inner());
        let entry = status.entry(key).or_default();
        match &got {
            Ok(t) => {
                valid.set(1);
                *entry = GrantStatus {
                    valid_until: Some(t.expires_at.into()),
                    needs_sign_in: false,
                    last_error: None,
                };
                slot.set(Some(t.clone()));
            }
            Err(e) => {
                if e.is_invalid_grant() {
                    valid.set(0);
                    entry.needs_sign_in = true;
                }
                entry.valid_until = None;
                entry.last_error = Some(e.to_string());
            }
        }
        got
    }

    /// A server refused `token`: it is not used again. A newer token taken
    /// meanwhile by another connection stays.
    pub async fn refused(&self, credential: &str, account: &str, token: &AccessToken) {
        let slot = self.slot(credential, account);
        let mut held = slot.held.lock().unwrap_or_else(|e| e.into_inner());
        if held
            .as_ref()
            .is_some_and(|t| t.secret.expose() == token.secret.expose())
        {
            *held = None;
        }
    }

    /// The grant of `credential`, if it is configured.
    pub fn grant_of(&self, credential: &str) -> Option<Grant> {
        self.inner
            .credentials
            .get(credential)
            .map(|c| c.settings.grant)
    }

    pub fn status(&self, credential: &str, account: &str) -> GrantStatus {
        let status = self.inner.status.lock().unwrap_or_else(|e| e.into_inner());
        status
            .get(&(credential.to_string(), account.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    fn slot(&self, credential: &str, account: &str) -> Arc<Slot> {
        let mut slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry((credential.to_string(), account.to_string()))
            .or_default()
            .clone()
    }

    fn credential(&self, credential: &str) -> Result<&Credential, OAuthError> {
        self.inner
            .credentials
            .get(credential)
            .ok_or_else(|| OAuthError::Unknown(credential.to_string()))
    }

    /// Resolves when someone signs in (any credential and account): here,
    /// or in another process sharing the grant store (`keepword oauth
    /// login` beside a running service), noticed within
    /// [`GRANT_STORE_CHECK`].
    pub async fn signed_in(&self) {
        let elsewhere = async {
            let Some(grants) = &self.inner.grants else {
                return std::future::pending().await;
            };
            let since = grants.last_change();
            loop {
                tokio::time::sleep(GRANT_STORE_CHECK).await;
                if grants.last_change() > since {
                    return;
                }
            }
        };
        tokio::select! {
            _ = self.inner.signed_in.notified() => {}
            _ = elsewhere => {}
        }
    }

    /// The provider's sign-in page for `account` (authorization code grant
    /// with PKCE, RFC 7636): `challenge` is the S256 hash of the verifier
    /// the caller keeps.
    pub fn authorize_url(
        &self,
        credential: &str,
        account: &str,
        state: &str,
        challenge: &str,
        redirect_uri: &str,
    ) -> Result<String, OAuthError> {
        let c = self.credential(credential)?;
        let base = c
            .settings
            .authorize_url()
            .ok_or_else(|| OAuthError::Config {
                credential: credential.to_string(),
                reason: "no authorize_url".into(),
            })?;
        let mut query = vec![
            ("response_type", "code"),
            ("client_id", c.settings.client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("state", state),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", account),
        ];
        if let Some(scope) = &c.scope {
            query.push(("scope", scope.as_str()));
        }
        if c.settings.provider == super::Provider::Google {
            // Google returns a refresh token only when asked for offline
            // access, and again only with a fresh consent.
            query.push(("access_type", "offline"));
            query.push(("prompt", "consent"));
        }
        let query = serde_urlencoded::to_string(&query).map_err(|e| OAuthError::Config {
            credential: credential.to_string(),
            reason: e.to_string(),
        })?;
        let sep = if base.contains('?') { '&' } else { '?' };
        Ok(format!("{base}{sep}{query}"))
    }

    /// Redeems the code of a sign-in: stores the refresh token (before the
    /// access token is used) and holds the access token.
    pub async fn redeem_code(
        &self,
        credential: &str,
        account: &str,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<AccessToken, OAuthError> {
        let c = self.credential(credential)?;
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.into()),
            ("redirect_uri", redirect_uri.into()),
            ("code_verifier", verifier.into()),
        ];
        self.client_auth(c, &mut form);
        let slot = self.slot(credential, account);
        let _refreshing = slot.refresh.lock().await;
        let got = self.post(credential, account, c, form).await;
        self.signed_in_with(credential, account, &slot, got)
    }

    /// Signs `account` in with the device authorization grant (RFC 8628):
    /// asks for a code, hands it to `show` (the person opens the URL on any
    /// device and types the code), then polls the token endpoint at the
    /// interval the provider asks for until the person has signed in,
    /// declined, or the code expired. The refresh token is stored as a
    /// sign-in on the Connections page stores it.
    pub async fn device_sign_in(
        &self,
        credential: &str,
        account: &str,
        show: impl FnOnce(&DeviceCode),
    ) -> Result<AccessToken, OAuthError> {
        let c = self.credential(credential)?;
        let refuse = |reason: String| OAuthError::Config {
            credential: credential.to_string(),
            reason,
        };
        if c.settings.grant != Grant::Delegated {
            return Err(refuse(format!(
                "signing in is for grant `delegated`; this credential uses `{}` and needs no sign-in",
                c.settings.grant.as_str()
            )));
        }
        let device_url = c.settings.device_url().ok_or_else(|| {
            refuse(match c.settings.provider {
                super::Provider::Google => "Google's device flow refuses the Gmail scope: sign in \
                    on the dashboard's Connections page instead"
                    .into(),
                _ => "no device_url: set it to the provider's device authorization endpoint, or \
                      sign in on the dashboard's Connections page"
                    .into(),
            })
        })?;
        let mut form: Vec<(&str, String)> = Vec::new();
        self.client_auth(c, &mut form);
        let answer = self
            .inner
            .http
            .post(&device_url)
            .header("Accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| OAuthError::Unreachable {
                url: device_url.clone(),
                reason: e.to_string(),
            })?;
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        let code: DeviceCode = if status.is_success() {
            serde_json::from_str(&body).map_err(|e| OAuthError::Refused {
                credential: credential.to_string(),
                status: status.as_u16(),
                error: "unexpected answer".into(),
                description: format!("not a device authorization response: {e}"),
            })?
        } else {
            let e = serde_json::from_str::<ErrorAnswer>(&body).ok();
            return Err(OAuthError::Refused {
                credential: credential.to_string(),
                status: status.as_u16(),
                error: e
                    .as_ref()
                    .map_or("unexpected answer".into(), |e| e.error.clone()),
                description: e
                    .and_then(|e| e.error_description)
                    .unwrap_or_else(|| body.chars().take(300).collect()),
            });
        };
        show(&code);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(code.expires_in);
        let mut interval = Duration::from_secs(code.interval.max(1));
        loop {
            tokio::time::sleep(interval).await;
            if tokio::time::Instant::now() >= deadline {
                return Err(device_refusal(credential, "expired_token"));
            }
            let mut form: Vec<(&str, String)> = vec![
                ("grant_type", DEVICE_GRANT.into()),
                ("device_code", code.device_code.clone()),
            ];
            self.client_auth(c, &mut form);
            let slot = self.slot(credential, account);
            let _refreshing = slot.refresh.lock().await;
            let got = match self.post(credential, account, c, form).await {
                Err(OAuthError::Refused { error, .. }) if error == "authorization_pending" => {
                    continue;
                }
                Err(OAuthError::Refused { error, .. }) if error == "slow_down" => {
                    // RFC 8628 section 3.5: every slow_down adds five seconds.
                    interval += Duration::from_secs(5);
                    continue;
                }
                Err(OAuthError::Refused { error, .. })
                    if error == "access_denied" || error == "expired_token" =>
                {
                    return Err(device_refusal(credential, &error));
                }
                other => other,
            };
            return self.signed_in_with(credential, account, &slot, got);
        }
    }

    /// A sign-in's token answer: the refresh token stored (before the
    /// access token is used), the token held, pollers waiting for a
    /// sign-in woken.
    fn signed_in_with(
        &self,
        credential: &str,
        account: &str,
        slot: &Slot,
        got: Result<(AccessToken, Option<String>), OAuthError>,
    ) -> Result<AccessToken, OAuthError> {
        let got = got.and_then(|(t, refresh)| {
            let refresh = refresh.ok_or_else(|| no_refresh_token(credential))?;
            self.store_grant(credential, account, &refresh)?;
            Ok(t)
        });
        let got = self.record(credential, account, slot, got);
        if got.is_ok() {
            self.inner.signed_in.notify_waiters();
        }
        got
    }

    fn grants(&self) -> Result<&super::store::GrantStore, OAuthError> {
        self.inner
            .grants
            .as_ref()
            .ok_or_else(|| OAuthError::Store("no grant store is configured".into()))
    }

    fn store_grant(
        &self,
        credential: &str,
        account: &str,
        refresh: &str,
    ) -> Result<(), OAuthError> {
        self.grants()?
            .put(credential, account, refresh)
            .map_err(|e| OAuthError::Store(e.to_string()))
    }

    fn client_auth(&self, c: &Credential, form: &mut Vec<(&str, String)>) {
        form.push(("client_id", c.settings.client_id.clone()));
        if !c.settings.client_secret.is_empty() {
            form.push((
                "client_secret",
                c.settings.client_secret.expose().to_string(),
            ));
        }
        if let Some(scope) = &c.scope {
            form.push(("scope", scope.clone()));
        }
    }

    async fn request(&self, credential: &str, account: &str) -> Result<AccessToken, OAuthError> {
        let c = self.credential(credential)?;
        let mut form: Vec<(&str, String)> = Vec::new();
        match c.settings.grant {
            Grant::ClientCredentials => {
                form.push(("grant_type", "client_credentials".into()));
                form.push(("client_id", c.settings.client_id.clone()));
                form.push((
                    "client_secret",
                    c.settings.client_secret.expose().to_string(),
                ));
            }
            Grant::JwtBearer => {
                let sa = c
                    .service_account
                    .as_ref()
                    .ok_or_else(|| OAuthError::Config {
                        credential: credential.to_string(),
                        reason: "no service_account_file".into(),
                    })?;
                let assertion = sa
                    .assertion(
                        account,
                        c.scope.as_deref().unwrap_or_default(),
                        &c.token_url,
                        SystemTime::now(),
                    )
                    .map_err(|reason| OAuthError::Config {
                        credential: credential.to_string(),
                        reason,
                    })?;
                form.push(("grant_type", jwt::GRANT_TYPE.into()));
                form.push(("assertion", assertion));
            }
            Grant::Delegated => {
                let refresh = self
                    .grants()?
                    .get(credential, account)
                    .map_err(|e| OAuthError::Store(e.to_string()))?
                    .ok_or_else(|| OAuthError::NotSignedIn {
                        credential: credential.to_string(),
                        account: account.to_string(),
                    })?;
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", refresh),
                ];
                self.client_auth(c, &mut form);
                let (token, rotated) = self.post(credential, account, c, form).await?;
                if let Some(rotated) = rotated {
                    // Stored before the access token is used: the old
                    // refresh token may already be dead at the provider.
                    self.store_grant(credential, account, &rotated)?;
                }
                return Ok(token);
            }
        }
        if let Some(scope) = &c.scope {
            form.push(("scope", scope.clone()));
        }
        self.post(credential, account, c, form)
            .await
            .map(|(t, _)| t)
    }

    /// POSTs a token request: the access token and any refresh token.
    async fn post(
        &self,
        credential: &str,
        account: &str,
        c: &Credential,
        form: Vec<(&str, String)>,
    ) -> Result<(AccessToken, Option<String>), OAuthError> {
        let counted = |outcome: &str| {
            self.inner
                .metrics
                .token_requests
                .with_label_values(&[credential, outcome])
                .inc()
        };
        let issued_at = SystemTime::now();
        let answer = self
            .inner
            .http
            .post(&c.token_url)
            .header("Accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                counted("error");
                OAuthError::Unreachable {
                    url: c.token_url.clone(),
                    reason: e.to_string(),
                }
            })?;
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        if !status.is_success() {
            counted("error");
            return Err(match serde_json::from_str::<ErrorAnswer>(&body) {
                Ok(e) if e.error == "invalid_grant" => OAuthError::InvalidGrant {
                    credential: credential.to_string(),
                    account: account.to_string(),
                    description: e.error_description.unwrap_or_default(),
                },
                Ok(e) => OAuthError::Refused {
                    credential: credential.to_string(),
                    status: status.as_u16(),
                    error: e.error,
                    description: e.error_description.unwrap_or_default(),
                },
                Err(_) => OAuthError::Refused {
                    credential: credential.to_string(),
                    status: status.as_u16(),
                    error: "unexpected answer".into(),
                    description: body.chars().take(300).collect(),
                },
            });
        }
        let t: TokenAnswer = serde_json::from_str(&body).map_err(|e| {
            counted("error");
            OAuthError::Refused {
                credential: credential.to_string(),
                status: status.as_u16(),
                error: "unexpected answer".into(),
                description: format!("not a token response: {e}"),
            }
        })?;
        counted("ok");
        // Without expires_in the provider's default lifetime is unknown;
        // an hour is what Microsoft and Google issue.
        let life = Duration::from_secs(t.expires_in.unwrap_or(3600));
        tracing::info!(
            credential,
            account,
            expires_in_s = life.as_secs(),
            "OAuth access token issued"
        );
        Ok((
            AccessToken {
                secret: Secret::new(t.access_token),
                expires_at: issued_at + life,
                issued_at,
            },
            t.refresh_token,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(life_s: u64) -> AccessToken {
        let issued_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        AccessToken {
            secret: Secret::new("t"),
            issued_at,
            expires_at: issued_at + Duration::from_secs(life_s),
        }
    }

    #[test]
    fn an_hour_token_is_renewed_five_minutes_early() {
        let t = token(3600);
        assert_eq!(t.renew_at(), t.expires_at - Duration::from_secs(300));
        assert!(t.fresh_at(t.expires_at - Duration::from_secs(301)));
        assert!(!t.fresh_at(t.expires_at - Duration::from_secs(300)));
    }

    #[test]
    fn a_short_token_is_renewed_at_half_life() {
        let t = token(60);
        assert_eq!(t.renew_at(), t.issued_at + Duration::from_secs(30));
    }
}
