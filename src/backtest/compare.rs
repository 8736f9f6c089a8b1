//! `keepword backtest --contract NEW --baseline OLD`: the same mail replayed
//! under both contracts, side by side per request type and client — what
//! the change would have done (conversations, % within the window,
//! breaches, p90), to decide whether to publish it.
//!
//! Each contract classifies the mail itself (a new request type or keyword
//! moves conversations between rows), so a row may exist under one
//! contract only; its other side is empty.

use std::collections::BTreeMap;

use serde::Serialize;

use super::chart::{self, Panel};
use super::{HTML_STYLE, Report, Row, business_words, escape, fit, header, pct, samples_of};

/// One request type and client under both contracts.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    pub request_type: String,
    pub request_type_name: String,
    pub client: String,
    pub client_name: String,
    pub baseline: Option<Row>,
    pub contract: Option<Row>,
}

impl Compared {
    fn breaches(&self) -> (usize, usize) {
        (
            self.contract.as_ref().map_or(0, |r| r.breaches),
            self.baseline.as_ref().map_or(0, |r| r.breaches),
        )
    }
    fn conversations(&self) -> usize {
        self.contract
            .as_ref()
            .or(self.baseline.as_ref())
            .map_or(0, |r| r.conversations)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The new contract's report.
    pub contract: Report,
    pub baseline: Report,
    /// Most breaches under the new contract first, then under the baseline,
    /// then the busiest, then by name.
    pub rows: Vec<Compared>,
    pub totals: Compared,
}

/// Sets two replays of the same mail side by side.
pub fn compare(contract: Report, baseline: Report) -> Comparison {
    let mut joined: BTreeMap<(String, String), Compared> = BTreeMap::new();
    let blank = |row: &Row| Compared {
        request_type: row.request_type.clone(),
        request_type_name: row.request_type_name.clone(),
        client: row.client.clone(),
        client_name: row.client_name.clone(),
        baseline: None,
        contract: None,
    };
    for row in &contract.rows {
        let key = (row.request_type.clone(), row.client.clone());
        joined.entry(key).or_insert_with(|| blank(row)).contract = Some(row.clone());
    }
    for row in &baseline.rows {
        let key = (row.request_type.clone(), row.client.clone());
        joined.entry(key).or_insert_with(|| blank(row)).baseline = Some(row.clone());
    }
    let mut rows: Vec<Compared> = joined.into_values().collect();
    rows.sort_by(|a, b| {
        let (an, ab) = a.breaches();
        let (bn, bb) = b.breaches();
        bn.cmp(&an)
            .then(bb.cmp(&ab))
            .then(b.conversations().cmp(&a.conversations()))
            .then_with(|| a.request_type_name.cmp(&b.request_type_name))
            .then_with(|| a.client_name.cmp(&b.client_name))
    });
    let totals = Compared {
        request_type: "total".into(),
        request_type_name: "Total".into(),
        client: String::new(),
        client_name: String::new(),
        baseline: Some(baseline.totals.clone()),
        contract: Some(contract.totals.clone()),
    };
    Comparison {
        contract,
        baseline,
        rows,
        totals,
    }
}

/// "3 → 1", "— → 2".
fn pair<T>(c: &Compared, f: impl Fn(&Row) -> T, show: impl Fn(T) -> String) -> String {
    let side = |r: &Option<Row>| r.as_ref().map_or_else(|| "—".to_string(), |r| show(f(r)));
    format!("{} → {}", side(&c.baseline), side(&c.contract))
}

fn cells(c: &Compared) -> [String; 4] {
    [
        pair(c, |r| r.conversations, |n| n.to_string()),
        pair(c, |r| r.within_window_pct, pct),
        pair(c, |r| r.breaches, |n| n.to_string()),
        pair(c, |r| r.p90_business_seconds, business_words),
    ]
}

pub fn render_text(c: &Comparison) -> String {
    let mut out = format!(
        "Backtest of {}\nagainst the baseline {}\n\nEach figure: baseline → new contract.\n\n",
        header(&c.contract),
        header(&c.baseline)
    );
    out.push_str(&format!(
        "{:<32} {:<20} {:>13} {:>17} {:>11} {:>19}\n",
        "request type", "client", "conversations", "in window", "breaches", "p90"
    ));
    for row in c.rows.iter().chain([&c.totals]) {
        let [convs, window, breaches, p90] = cells(row);
        out.push_str(&format!(
            "{:<32} {:<20} {convs:>13} {window:>17} {breaches:>11} {p90:>19}\n",
            fit(&row.request_type_name, 32),
            fit(&row.client_name, 20),
        ));
    }
    out
}

pub fn render_html(c: &Comparison) -> String {
    let mut rows = String::new();
    for row in c.rows.iter().chain([&c.totals]) {
        let class = if row.request_type == "total" {
            " class=\"total\""
        } else {
            ""
        };
        let [convs, window, breaches, p90] = cells(row).map(|s| escape(&s));
        rows.push_str(&format!(
            "<tr{class}><td>{}</td><td>{}</td><td>{convs}</td><td>{window}</td><td>{breaches}</td><td>{p90}</td></tr>\n",
            escape(&row.request_type_name),
            escape(&row.client_name),
        ));
    }
    // One chart per request type of either contract, in the new one's order.
    let mut charts = String::new();
    let mut types: Vec<(&str, &str)> = c
        .contract
        .windows
        .iter()
        .map(|w| (w.request_type.as_str(), w.request_type_name.as_str()))
        .collect();
    for w in &c.baseline.windows {
        if !types.iter().any(|(id, _)| *id == w.request_type) {
            types.push((&w.request_type, &w.request_type_name));
        }
    }
    for (id, name) in types {
        let window = |r: &Report| {
            r.windows
                .iter()
                .find(|w| w.request_type == id)
                .and_then(|w| w.first_response_business_seconds)
        };
        let (old, new) = (samples_of(&c.baseline, id), samples_of(&c.contract, id));
        if old.is_empty() && new.is_empty() {
            continue;
        }
        charts.push_str(&chart::figure(
            name,
            &[
                Panel {
                    label: "baseline",
                    window: window(&c.baseline),
                    samples: &old,
                },
                Panel {
                    label: "new contract",
                    window: window(&c.contract),
                    samples: &new,
                },
            ],
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Backtest: {name} against {base}</title>\
         <style>{HTML_STYLE}</style></head><body><main><h1>Backtest: {name}</h1>\
         <p>New contract: {new_header}.</p><p>Baseline: {old_header}.</p><p>Each figure: baseline → new contract.</p>\
         <table><tr><th>request type</th><th>client</th><th>conversations</th><th>first response in window</th>\
         <th>breaches</th><th>p90 first response</th></tr>\n{rows}</table>\
         <h2>First responses against the window</h2>\n{charts}</main></body></html>\n",
        name = escape(&c.contract.contract),
        base = escape(&c.baseline.contract),
        new_header = escape(&header(&c.contract)),
        old_header = escape(&header(&c.baseline)),
    )
}
