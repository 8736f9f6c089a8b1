//! One error type for every HTTP answer that is not a success, with three
//! renderings: JSON for the API and webhooks, the dashboard's HTML page,
//! and the client-facing pages' private answer (no robots, no referrer, no
//! cache: their URLs hold a token).
//!
//! A handler says which rendering it wants by its return type:
//! `Result<_, WebError>` answers JSON, `Result<_, Page>` the dashboard's
//! page, `Result<_, Public>` the client-facing one. `?` converts a
//! [`ServiceError`] into any of them, so what a caller can fix (a field, an
//! id) is named and what it cannot (the database, a failed task) is logged
//! and answered as unavailable, without internals.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{ConnectionType, Method, StatusCode};
use actix_web::{HttpResponse, ResponseError, web};
use serde_json::json;

use crate::ingest::{EventError, FieldError};
use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A bearer token missing or wrong.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// No live dashboard session: the answer sends the browser to sign in
    /// and shows no data. `next` is where to go afterwards.
    #[error("sign in first")]
    SignIn { next: String },
    /// A webhook's signature or secret does not hold.
    #[error("{0}")]
    BadSignature(String),
    /// The request is wrong; `heading` titles the dashboard's page.
    #[error("{message}")]
    BadRequest {
        heading: &'static str,
        message: String,
    },
    /// Fields that are wrong, each named.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The message says what was not found.
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed (allowed: {})", join_methods(.0))]
    MethodNotAllowed(Vec<Method>),
    /// The body is over `limit` bytes; the rest of it is not read.
    #[error("request body over {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A form from another site or an older session.
    #[error("{message}")]
    Forbidden {
        heading: &'static str,
        message: String,
    },
    /// Nothing the caller can fix: a task failed (the cause is logged
    /// where it happened).
    #[error("temporarily unavailable, retry")]
    Unavailable,
    /// The database failed or did not answer (down, restarting, full): a
    /// retry is what the caller can do (an event's id makes it safe even
    /// when a commit's answer was what got lost). Named, so a client or its
    /// operator tells it from a bug; the driver's own message stays in the
    /// log (it names host, port and database).
    #[error("the database did not answer; retry")]
    DatabaseUnavailable,
}

impl WebError {
    pub fn bad_request(message: impl Into<String>) -> WebError {
        WebError::BadRequest {
            heading: "Bad request",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> WebError {
        WebError::NotFound(message.into())
    }

    /// The JSON answer: `{"error": …}` (and `fields` for invalid input).
    pub fn json(&self) -> HttpResponse {
        let body = match self {
            WebError::Invalid(fields) => json!({"error": "invalid input", "fields": fields}),
            other => json!({"error": other.to_string()}),
        };
        let mut r = self.builder();
        r.json(body)
    }

    /// The dashboard's answer: a page that says what went wrong, or the
    /// redirect to the sign-in page.
    pub fn page(&self) -> HttpResponse {
        if let WebError::SignIn { next } = self {
            return HttpResponse::SeeOther()
                .insert_header((
                    header::LOCATION,
                    format!("/login?next={}", super::dashboard::encode(next)),
                ))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
        }
        let (heading, message) = match self {
            WebError::BadRequest { heading, message }
            | WebError::Forbidden { heading, message } => (*heading, message.clone()),
            WebError::Invalid(fields) => ("Bad request", crate::ingest::webhook::summary(fields)),
            WebError::NotFound(what) if what.is_empty() => {
                ("Not found", "There is nothing at this address.".into())
            }
            WebError::NotFound(what) => ("Not found", format!("{what}.")),
            WebError::PayloadTooLarge { limit } => (
                "Form too large",
                format!("A form here holds at most {} KiB.", limit >> 10),
            ),
            WebError::Unavailable | WebError::DatabaseUnavailable => (
                "Temporarily unavailable",
                "The database did not answer. Try again in a moment.".into(),
            ),
            other => ("Refused", other.to_string()),
        };
        let mut r = super::dashboard::error_page(self.status_code(), heading, &message);
        self.finish_head(&mut r);
        r
    }

    /// The client-facing pages' answer: their own 404 page, or a short
    /// text, always private.
    pub fn public(&self) -> HttpResponse {
        match self {
            WebError::NotFound(_) => super::status::not_found_page(),
            other => super::status::private(HttpResponse::build(other.status_code()))
                .content_type(header::ContentType::plaintext())
                .body("Temporarily unavailable; please try again in a minute."),
        }
    }

    fn builder(&self) -> actix_web::HttpResponseBuilder {
        let mut r = HttpResponse::build(self.status_code());
        match self {
            WebError::Unauthorized => {
                r.insert_header(("WWW-Authenticate", "Bearer"));
            }
            WebError::MethodNotAllowed(allowed) => {
                r.insert_header(("Allow", join_methods(allowed)));
            }
            WebError::PayloadTooLarge { .. } => {
                // The rest of the body is not read: the connection cannot
                // be reused.
                r.force_close();
            }
            _ => {}
        }
        r
    }

    fn finish_head(&self, r: &mut HttpResponse) {
        match self {
            WebError::MethodNotAllowed(allowed) => {
                if let Ok(v) = HeaderValue::from_str(&join_methods(allowed)) {
                    r.headers_mut().insert(header::ALLOW, v);
                }
            }
            WebError::PayloadTooLarge { .. } => {
                r.head_mut().set_connection_type(ConnectionType::Close);
            }
            _ => {}
        }
    }
}

fn join_methods(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::Unauthorized | WebError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            WebError::SignIn { .. } => StatusCode::SEE_OTHER,
            WebError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            WebError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            WebError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            WebError::Forbidden { .. } => StatusCode::FORBIDDEN,
            WebError::Unavailable | WebError::DatabaseUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.json()
    }
}

impl From<ServiceError> for WebError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(fields) => WebError::Invalid(fields),
            ServiceError::NotFound(what) => WebError::NotFound(format!("{what} not found")),
            e @ (ServiceError::Store(_) | ServiceError::Database(_)) => {
                tracing::error!(error = %e, "request failed: the database");
                WebError::DatabaseUnavailable
            }
            other => {
                // The caller cannot fix these; say so without internals.
                tracing::error!(error = %other, "request failed");
                WebError::Unavailable
            }
        }
    }
}

impl From<EventError> for WebError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::Malformed(m) => WebError::bad_request(m),
            EventError::Invalid(fields) => WebError::Invalid(fields),
        }
    }
}

/// Runs blocking work (diesel) off the async workers. A task that failed
/// to run (a panic, a runtime shutting down) is logged as such and
/// answered as unavailable — it says nothing about the data.
pub async fn blocking<T: Send + 'static, E: Into<WebError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, WebError> {
    match web::block(f).await {
        Ok(r) => r.map_err(Into::into),
        Err(e) => {
            tracing::error!(error = %e, "blocking task failed");
            Err(WebError::Unavailable)
        }
    }
}

macro_rules! rendering {
    ($(#[$doc:meta])* $name:ident, $render:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(pub WebError);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl ResponseError for $name {
            fn status_code(&self) -> StatusCode {
                self.0.status_code()
            }
            fn error_response(&self) -> HttpResponse {
                self.0.$render()
            }
        }

        impl From<WebError> for $name {
            fn from(e: WebError) -> Self {
                $name(e)
            }
        }

        impl From<ServiceError> for $name {
            fn from(e: ServiceError) -> Self {
                $name(e.into())
            }
        }
    };
}

rendering!(
    /// A [`WebError`] answered as the dashboard's page.
    Page,
    page
);
rendering!(
    /// A [`WebError`] answered as the client-facing pages do.
    Public,
    public
);

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;

    use super::*;

    fn body(r: HttpResponse) -> String {
        String::from_utf8(r.into_body().try_into_bytes().unwrap().to_vec()).unwrap()
    }

    #[actix_web::test]
    async fn a_failed_task_is_unavailable_not_bad_data() {
        let failed = blocking(|| -> Result<(), ServiceError> { panic!("a bug") }).await;
        let e = failed.unwrap_err();
        assert!(matches!(e, WebError::Unavailable), "{e:?}");
        let r = e.json();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body(r),
            r#"{"error":"temporarily unavailable, retry"}"#,
            "no internals"
        );
    }

    /// A client told only "temporarily unavailable" cannot tell a database
    /// restart from a bug; the driver's message (host, port, database
    /// name) stays out of the answer.
    #[actix_web::test]
    async fn a_database_failure_is_named_without_internals() {
        let failed = blocking(|| -> Result<(), ServiceError> {
            Err(crate::store::StoreError::Pool(
                "timed out waiting for connection to db.internal:5432".into(),
            )
            .into())
        })
        .await;
        let r = failed.unwrap_err().json();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(r), r#"{"error":"the database did not answer; retry"}"#);
    }

    #[test]
    fn one_error_three_renderings() {
        let e = WebError::NotFound("conversation 7 not found".into());
        let json = e.json();
        assert_eq!(json.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            json.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json",
            "the API's shape"
        );
        assert_eq!(body(json), r#"{"error":"conversation 7 not found"}"#);

        let page = e.page();
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
        assert!(page.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let html = body(page);
        assert!(html.contains("<h1>Not found</h1>"), "{html}");
        assert!(html.contains("conversation 7 not found."), "{html}");

        let public = e.public();
        assert_eq!(public.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            public.headers().get("x-robots-tag").unwrap(),
            "noindex, nofollow"
        );
        assert_eq!(
            public.headers().get("referrer-policy").unwrap(),
            "no-referrer"
        );
    }

    #[test]
    fn invalid_fields_are_named_in_every_rendering() {
        let e = WebError::Invalid(vec![FieldError {
            field: "limit".into(),
            problem: "must be between 1 and 1000 (got 0)".into(),
        }]);
        assert_eq!(e.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
        let json: serde_json::Value = serde_json::from_str(&body(e.json())).unwrap();
        assert_eq!(json["fields"][0]["field"], "limit");
        assert!(body(e.page()).contains("limit"));
    }

    #[test]
    fn signing_in_is_a_redirect_that_comes_back_and_shows_nothing() {
        let r = WebError::SignIn {
            next: "/conversations/3?page=2".into(),
        }
        .page();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers().get(header::LOCATION).unwrap(),
            "/login?next=/conversations/3%3Fpage%3D2"
        );
        assert_eq!(body(r), "");
    }

    #[test]
    fn the_api_asks_for_a_bearer_token_and_names_allowed_methods() {
        let r = WebError::Unauthorized.json();
        assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
        let r = WebError::MethodNotAllowed(vec![Method::GET, Method::POST]).json();
        assert_eq!(r.headers().get("allow").unwrap(), "GET, POST");
        let r = WebError::PayloadTooLarge { limit: 10 }.page();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
