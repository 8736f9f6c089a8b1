//! `GET /compliance` (per request type, client and timer, or `?by=author`),
//! its CSV, the conversations behind each figure, and the team's view of a
//! client's record (`/record/{client}`).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use minijinja::{Value, context};
use serde::Deserialize;

use super::{AppState, Page, WebError, encode, page, query};
use crate::service::ComplianceRow;
use crate::web::auth::SignedIn;
use crate::web::error::blocking;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PeriodQuery {
    from: Option<String>,
    to: Option<String>,
    #[serde(rename = "type")]
    request_type: Option<String>,
    client: Option<String>,
    timer: Option<String>,
    outcome: Option<String>,
    /// `author`: group by who wrote the replies.
    by: Option<String>,
}

impl PeriodQuery {
    fn by_author(&self) -> bool {
        self.by.as_deref() == Some("author")
    }
}

/// `[from, to)` as UTC instants; by default the last 30 days. Dates lie in
/// the calendar's years: nothing was recorded outside them, and far ones
/// overflow date arithmetic or the database's own date range.
fn period(q: &PeriodQuery, now: DateTime<Utc>) -> Result<(NaiveDate, NaiveDate), String> {
    let (lo, hi) = crate::ingest::webhook::instant_range();
    let (lo, hi) = (lo.date_naive(), hi.date_naive());
    let parse = |name: &str, v: &Option<String>| -> Result<Option<NaiveDate>, String> {
        match v.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => match s.parse::<NaiveDate>() {
                Ok(d) if (lo..=hi).contains(&d) => Ok(Some(d)),
                Ok(_) => Err(format!(
                    "`{name}` must be a date from {lo} to {hi} (got `{s}`)"
                )),
                Err(_) => Err(format!(
                    "`{name}` must be a date like 2026-12-01 (got `{s}`)"
                )),
            },
        }
    };
    let to = parse("to", &q.to)?.unwrap_or(now.date_naive() + TimeDelta::days(1));
    let from = parse("from", &q.from)?.unwrap_or(to - TimeDelta::days(30));
    if from >= to {
        return Err(format!("`from` ({from}) must be before `to` ({to})"));
    }
    Ok((from, to))
}

fn at_midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// The query and its period, or the 400 page naming what is wrong.
fn period_of(
    state: &AppState,
    req: &HttpRequest,
) -> Result<(PeriodQuery, NaiveDate, NaiveDate), Page> {
    let q: PeriodQuery = query(req, "Bad period")?;
    let (from, to) = period(&q, state.reads.now()).map_err(|message| {
        Page(WebError::BadRequest {
            heading: "Bad period",
            message,
        })
    })?;
    if let Some(by) = q.by.as_deref().filter(|b| !b.is_empty() && *b != "author") {
        return Err(Page(WebError::BadRequest {
            heading: "Bad grouping",
            message: format!("`by` must be `author` (got `{by}`)"),
        }));
    }
    Ok((q, from, to))
}

async fn compliance_rows(
    state: &AppState,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<ComplianceRow>, Page> {
    let reads = state.reads.clone();
    Ok(blocking(move || reads.compliance(at_midnight(from), at_midnight(to))).await?)
}

async fn author_rows(
    state: &AppState,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<crate::service::AuthorRow>, Page> {
    let reads = state.reads.clone();
    Ok(blocking(move || reads.compliance_by_author(at_midnight(from), at_midnight(to))).await?)
}

fn business(secs: Option<i64>) -> String {
    secs.map_or("—".into(), |s| {
        crate::service::span_words(TimeDelta::seconds(s))
    })
}

/// The client's page as the client sees it, for the signed-in team.
pub(super) async fn client_record(
    _: SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Page> {
    let client = req
        .match_info()
        .get("client")
        .unwrap_or_default()
        .to_string();
    if state.contract.current().contract.client(&client).is_none() {
        return Err(Page(WebError::not_found(format!(
            "The contract declares no client `{client}`"
        ))));
    }
    let days = crate::web::client::days(&req);
    let broken = crate::web::client::broken_page(&req);
    let reads = state.reads.clone();
    let page = blocking(move || reads.client_page_of(&client, days, broken)).await?;
    Ok(crate::web::client::team_view(&page))
}

pub(super) async fn compliance(
    signed_in: SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Page> {
    let (q, from, to) = period_of(&state, &req)?;
    let csrf = signed_in.0.csrf;
    if q.by_author() {
        let rows = author_rows(&state, from, to).await?;
        let view: Vec<Value> = rows
            .iter()
            .map(|r| {
                context! {
                    author => r.author.clone(), replies => r.replies,
                    first_responses => r.first_responses, p50 => business(r.p50),
                }
            })
            .collect();
        return Ok(page(
            &state,
            StatusCode::OK,
            "compliance.html",
            context! { by_author => true, authors => view, from => from.to_string(), to => to.to_string(), signed_in => true, csrf, nav => "compliance" },
        ));
    }
    let rows = compliance_rows(&state, from, to).await?;
    let current = state.contract.current();
    let view: Vec<Value> = rows
        .iter()
        .map(|r| {
            let timer = r.timer.replace(' ', "_");
            let link = |outcome: &str| {
                format!(
                    "/compliance/conversations?from={from}&to={to}&type={}&client={}&timer={timer}&outcome={outcome}",
                    encode(&r.request_type),
                    encode(&r.client_id)
                )
            };
            context! {
                type_name => current.contract.request_type(&r.request_type).map_or(r.request_type.clone(), |t| t.name.clone()),
                client => r.client.clone(), timer => r.timer.clone(),
                conversations => r.conversations, met => r.met, missed => r.missed, breached => r.breached,
                met_pct => r.met_pct.map(|p| format!("{p:.1}%")),
                p50 => business(r.p50), p90 => business(r.p90),
                links => context! { all => link("all"), met => link("met"), missed => link("missed"), breached => link("breached") },
            }
        })
        .collect();
    Ok(page(
        &state,
        StatusCode::OK,
        "compliance.html",
        context! { rows => view, from => from.to_string(), to => to.to_string(), signed_in => true, csrf, nav => "compliance" },
    ))
}

/// A CSV field: quoted when needed, and a leading `=`, `+`, `-`, `@`, tab
/// or carriage return defused (a spreadsheet would run it as a formula; it
/// skips a leading tab or CR and reads the `=` behind it).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub(super) async fn csv(
    _: SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Page> {
    let (q, from, to) = period_of(&state, &req)?;
    if q.by_author() {
        let rows = author_rows(&state, from, to).await?;
        let mut out =
            String::from("author,replies,first_responses,p50_first_response_business_seconds\r\n");
        for r in &rows {
            out.push_str(&format!(
                "{},{},{},{}\r\n",
                csv_field(&r.author),
                r.replies,
                r.first_responses,
                r.p50.map_or(String::new(), |v| v.to_string()),
            ));
        }
        return Ok(csv_response(
            &format!("compliance-by-author-{from}-{to}.csv"),
            out,
        ));
    }
    let rows = compliance_rows(&state, from, to).await?;
    let mut out = String::from(
        "request_type,client_id,client,timer,conversations,met,missed,breached,met_pct,p50_business_seconds,p90_business_seconds\r\n",
    );
    let opt = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
    for r in &rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\r\n",
            csv_field(&r.request_type),
            csv_field(&r.client_id),
            csv_field(&r.client),
            csv_field(&r.timer),
            r.conversations,
            r.met,
            r.missed,
            r.breached,
            r.met_pct.map_or(String::new(), |p| format!("{p:.1}")),
            opt(r.p50),
            opt(r.p90),
        ));
    }
    Ok(csv_response(&format!("compliance-{from}-{to}.csv"), out))
}

fn csv_response(file: &str, body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// The conversations behind one figure of the report.
pub(super) async fn conversations(
    signed_in: SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Page> {
    let (q, from, to) = period_of(&state, &req)?;
    // Counted from the rows, with the conversations behind each figure.
    let reads = state.reads.clone();
    let rows =
        blocking(move || reads.compliance_with_ids(at_midnight(from), at_midnight(to))).await?;
    let outcome = q.outcome.clone().unwrap_or_else(|| "all".into());
    let timer = q.timer.clone().unwrap_or_default().replace('_', " ");
    let mut ids: Vec<i64> = rows
        .iter()
        .filter(|r| q.request_type.as_ref().is_none_or(|t| *t == r.request_type))
        .filter(|r| q.client.as_ref().is_none_or(|c| *c == r.client_id))
        .filter(|r| timer.is_empty() || r.timer == timer)
        .flat_map(|r| r.ids.get(outcome.as_str()).cloned().unwrap_or_default())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(1000);
    let reads = state.reads.clone();
    let listed: Vec<Value> = blocking(move || reads.conversation_headlines(&ids))
        .await?
        .into_iter()
        .map(|(id, subject, client, status)| context! { id, subject, client, status })
        .collect();
    let heading = format!(
        "{} conversations: {}{} {}",
        if outcome == "all" {
            "All"
        } else {
            outcome.as_str()
        },
        q.request_type.clone().unwrap_or_default(),
        q.client
            .as_ref()
            .map_or(String::new(), |c| format!(" · {c}")),
        if timer.is_empty() {
            String::new()
        } else {
            format!("· {timer}")
        }
    );
    Ok(page(
        &state,
        StatusCode::OK,
        "list.html",
        context! { heading, rows => listed, back => format!("/compliance?from={from}&to={to}"), signed_in => true, csrf => signed_in.0.csrf, nav => "compliance" },
    ))
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_that_a_spreadsheet_would_run_are_defused() {
        for (field, expect) in [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1+1", "'\t=1+1"),
            ("\r=1+1", "\"'\r=1+1\""),
            ("ACME, Inc.", "\"ACME, Inc.\""),
            ("plain", "plain"),
        ] {
            assert_eq!(csv_field(field), expect, "{field:?}");
        }
    }
}
