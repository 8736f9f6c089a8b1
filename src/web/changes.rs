//! `GET /contract/changes` and `/contract/changes.md` (README, "The contract"): every
//! contract version, newest first, with its decision and what changed for
//! clients. Public, like `/contract`.

use std::fmt::Write as _;
use std::sync::LazyLock;

use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::{HttpResponse, web};
use minijinja::{AutoEscape, Environment, context};

use super::AppState;
use super::error::{Page, WebError, blocking};
use crate::service::VersionChanges;

const PAGE: &str = "contract/changes.html";

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template(PAGE, include_str!("templates/contract/changes.html"))
        .expect("the changes page template compiles");
    env
});

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/contract/changes", web::get().to(changes_html))
        .route("/contract/changes.md", web::get().to(changes_markdown));
}

async fn versions(state: &AppState) -> Result<Vec<VersionChanges>, WebError> {
    let reads = state.reads.clone();
    blocking(move || reads.contract_changes()).await
}

async fn changes_html(state: web::Data<AppState>) -> Result<HttpResponse, Page> {
    let versions = versions(&state).await?;
    let name = state.contract.current().contract.info().name.clone();
    Ok(
        match TEMPLATES
            .get_template(PAGE)
            .and_then(|t| t.render(context! { name, versions }))
        {
            Ok(body) => HttpResponse::Ok()
                .content_type(ContentType::html())
                .insert_header(CacheControl(vec![CacheDirective::NoCache]))
                .body(body),
            Err(e) => {
                tracing::error!(error = %e, "contract changes template failed");
                HttpResponse::InternalServerError().finish()
            }
        },
    )
}

async fn changes_markdown(state: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    let versions = versions(&state).await?;
    let name = state.contract.current().contract.info().name.clone();
    Ok(HttpResponse::Ok()
        .content_type("text/markdown; charset=utf-8")
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(markdown(&name, &versions)))
}

/// The changes as Markdown (CommonMark); free text from the contract is
/// escaped so it cannot turn into markup or raw HTML.
pub fn markdown(name: &str, versions: &[VersionChanges]) -> String {
    let mut out = format!("# Changes to our contract\n\n{}\n", md(name));
    for v in versions {
        let now = if v.in_force { " (in force now)" } else { "" };
        let _ = write!(out, "\n## In effect from {}{now}\n\n", v.effective);
        if let Some(d) = &v.decision {
            let _ = write!(out, "**Why:** {}\n\n", md(d));
        }
        if v.first {
            out.push_str("The first version we kept.\n\n");
        } else if v.changes.is_empty() {
            out.push_str("No change in what we promise you.\n\n");
        } else {
            for c in &v.changes {
                let _ = writeln!(out, "- {}", md(c));
            }
            out.push('\n');
        }
        let _ = writeln!(out, "Version `{}`", v.version_short);
    }
    out
}

fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '&'
        ) {
            out.push('\\');
        }
        out.push(if c == '\n' { ' ' } else { c });
    }
    out
}
