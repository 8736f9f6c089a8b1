//! Diagnostics: one problem in a contract file, located by line and column,
//! with a hint on how to fix it; plus the "did you mean" suggestions.
//!
//! Positions are computed from byte spans of the TOML parser; columns count
//! characters, not bytes, so a cursor in an editor lands on the right spot
//! even after a non-ASCII name earlier on the line.

use std::fmt;
use std::ops::Range;

/// One problem found in a contract file.
///
/// Displays as `FILE:LINE:COL: error: MESSAGE`, plus `\n  hint: HINT` when
/// there is a hint — the format `keepword contract check` prints and editors
/// understand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file, self.line, self.col, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem of a rejected contract, sorted by position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Collects diagnostics while the parser walks the document, so that one run
/// reports every problem instead of stopping at the first.
pub(crate) struct Sink<'s> {
    file: String,
    source: &'s str,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    found: Vec<(usize, Diagnostic)>,
}

impl<'s> Sink<'s> {
    pub(crate) fn new(source: &'s str, file: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        Sink {
            file: file.to_string(),
            source,
            line_starts,
            found: Vec::new(),
        }
    }

    /// 1-based line and character column of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.source.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self
            .source
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }

    pub(crate) fn line(&self, span: &Range<usize>) -> usize {
        self.line_col(span.start).0
    }

    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, message.into(), None);
    }

    pub(crate) fn error_hint(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(span, message.into(), Some(hint.into()));
    }

    pub(crate) fn push(&mut self, span: Range<usize>, message: String, hint: Option<String>) {
        let (line, col) = self.line_col(span.start);
        self.found.push((
            span.start,
            Diagnostic {
                file: self.file.clone(),
                line,
                col,
                message,
                hint,
            },
        ));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The diagnostics sorted by position; ties keep the order of discovery.
    pub(crate) fn finish(mut self) -> Diagnostics {
        self.found.sort_by_key(|(offset, _)| *offset);
        Diagnostics(self.found.into_iter().map(|(_, d)| d).collect())
    }
}

/// The candidate closest to `input`, if any is close enough to be a likely
/// typo rather than a different word.
pub(crate) fn closest<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let input = input.to_lowercase();
    let mut best: Option<(f64, &'a str)> = None;
    for candidate in candidates {
        let score = similarity(&input, &candidate.to_lowercase());
        if score > best.map_or(0.0, |(s, _)| s) {
            best = Some((score, candidate));
        }
    }
    best.filter(|(score, _)| *score >= 0.8).map(|(_, c)| c)
}

/// 0..=1; edit distance relative to length catches typos in short keys
/// ("tues" → "tue"), Jaro-Winkler catches truncations of long ones
/// ("first" → "first_response").
fn similarity(a: &str, b: &str) -> f64 {
    if a == b {
        return 1.0;
    }
    let distance = strsim::damerau_levenshtein(a, b);
    let allowed = (a.chars().count().max(b.chars().count()) / 3).max(1);
    let by_distance = if distance <= allowed {
        0.95 - 0.05 * distance as f64
    } else {
        0.0
    };
    let by_prefix = strsim::jaro_winkler(a, b);
    let by_prefix = if by_prefix >= 0.85 {
        by_prefix - 0.05
    } else {
        0.0
    };
    by_distance.max(by_prefix)
}

/// Up to three IANA zone names close to `input`, best first. Compares both the
/// full name and the city part, so "Berlin" and "Europe/Berln" both find
/// "Europe/Berlin".
pub(crate) fn closest_time_zones(input: &str) -> Vec<&'static str> {
    let needle = input.trim().to_lowercase().replace(' ', "_");
    let mut scored: Vec<(f64, &'static str)> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| {
            let name = tz.name();
            let lower = name.to_lowercase();
            let city = lower.rsplit('/').next().unwrap_or(&lower);
            let score = if lower == needle {
                1.0
            } else {
                strsim::jaro_winkler(&needle, &lower).max(strsim::jaro_winkler(&needle, city))
            };
            (score, name)
        })
        .filter(|(score, _)| *score >= 0.85)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    // A clear winner is the answer; near-ties are worth listing.
    let best = scored.first().map_or(0.0, |(score, _)| *score);
    scored
        .into_iter()
        .take_while(|(score, _)| *score >= best - 0.03)
        .take(3)
        .map(|(_, name)| name)
        .collect()
}

/// `"a", "b" and "c"` — for hints listing the valid choices.
pub(crate) fn quoted_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| format!("\"{s}\"")).collect();
    match items.len() {
        0 => "(none)".to_string(),
        1 => items[0].clone(),
        n => format!("{} or {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_hint() {
        let mut d = Diagnostic {
            file: "c.toml".into(),
            line: 3,
            col: 7,
            message: "boom".into(),
            hint: None,
        };
        assert_eq!(d.to_string(), "c.toml:3:7: error: boom");
        d.hint = Some("fix it".into());
        assert_eq!(d.to_string(), "c.toml:3:7: error: boom\n  hint: fix it");
    }

    #[test]
    fn line_col_counts_characters() {
        let sink = Sink::new("ab\n\u{e9}\u{e9}x\n", "f");
        assert_eq!(sink.line_col(0), (1, 1));
        assert_eq!(sink.line_col(3), (2, 1));
        // 'x' is at byte 7 but is the third character of line 2.
        assert_eq!(sink.line_col(7), (2, 3));
        assert_eq!(sink.line_col(9), (3, 1));
    }

    #[test]
    fn suggestions() {
        let keys = ["mon", "tue", "wed", "timezone", "holidays", "always"];
        assert_eq!(closest("tues", keys), Some("tue"));
        assert_eq!(closest("timezon", keys), Some("timezone"));
        assert_eq!(closest("holiday", keys), Some("holidays"));
        assert_eq!(closest("zzzzzz", keys), None);
        assert_eq!(
            closest("bussiness", ["always", "business"]),
            Some("business")
        );
        assert_eq!(
            closest("first", ["first_response", "resolution"]),
            Some("first_response")
        );
    }

    #[test]
    fn time_zone_suggestions() {
        assert_eq!(closest_time_zones("Europe/Berln")[0], "Europe/Berlin");
        assert!(closest_time_zones("Berlin").contains(&"Europe/Berlin"));
        assert!(closest_time_zones("Europe/Pariss").contains(&"Europe/Paris"));
    }
}
