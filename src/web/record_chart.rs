//! The client page's picture of a request type: the weeks of the period
//! with the promises kept (bars up) and broken (bars down), and the median
//! first response of each week (a dot) against the promised window (a
//! dashed line). Inline SVG drawn here, as the backtest report's charts are:
//! no script, nothing to load. Colours come from the page's stylesheet
//! (light and dark), and position says what colour says: up is kept, down
//! is broken, a dot above the line is slower than promised.

use std::fmt::Write as _;

use crate::service::{TypeRecord, span_words};

const WIDTH: i64 = 640;
const LEFT: i64 = 44;
const RIGHT: i64 = 12;
/// Height of each half (kept above the axis, broken below).
const HALF: i64 = 56;
const TOP: i64 = 18;
/// The median panel below the bars.
const MEDIAN: i64 = 70;
const GAP: i64 = 46;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The sentence a screen reader hears for the picture.
pub fn summary(t: &TypeRecord) -> String {
    let kept: usize = t.weeks.iter().map(|w| w.kept).sum();
    let broken: usize = t.weeks.iter().map(|w| w.broken).sum();
    let worst = t
        .weeks
        .iter()
        .filter(|w| w.broken > 0)
        .max_by_key(|w| w.broken)
        .map(|w| format!("; most broken in the week of {} ({})", w.starts, w.broken))
        .unwrap_or_default();
    let median = match (&t.median_words, t.window_words.is_empty()) {
        (Some(m), false) => format!(". Median first response {m}; we promise {}", t.window_words),
        (Some(m), true) => format!(". Median first response {m}"),
        (None, _) => String::new(),
    };
    format!(
        "{}: over {} weeks, {kept} promises kept and {broken} broken{worst}{median}.",
        t.name,
        t.weeks.len()
    )
}

/// The `<svg>` of one request type; `id` makes its title unique on the page.
pub fn svg(t: &TypeRecord, id: &str) -> String {
    let weeks = t.weeks.len().max(1) as i64;
    let plot = WIDTH - LEFT - RIGHT;
    let step = plot / weeks;
    let bar = (step * 2 / 3).max(2);
    let max_count = t
        .weeks
        .iter()
        .map(|w| w.kept.max(w.broken))
        .max()
        .unwrap_or(0)
        .max(1) as i64;
    let axis = TOP + HALF;
    let median_top = axis + HALF + GAP;
    let height = median_top + MEDIAN + 22;
    let max_secs = t
        .weeks
        .iter()
        .filter_map(|w| w.median_first_response)
        .chain(t.window)
        .max()
        .unwrap_or(0)
        .max(60);
    let max_secs = max_secs + max_secs / 8;
    let y_secs = |s: i64| median_top + MEDIAN - s.clamp(0, max_secs) * MEDIAN / max_secs;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"record-chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" \
         role=\"img\" aria-labelledby=\"{id}-title\" preserveAspectRatio=\"xMinYMin meet\">\
         <title id=\"{id}-title\">{}</title>",
        escape(&summary(t))
    );
    let _ = write!(
        out,
        "<text class=\"chart-label\" x=\"{LEFT}\" y=\"{}\">kept ▲ (max {max_count})</text>\
         <text class=\"chart-label\" x=\"{LEFT}\" y=\"{}\">broken ▼</text>\
         <line class=\"chart-axis\" x1=\"{LEFT}\" y1=\"{axis}\" x2=\"{}\" y2=\"{axis}\"/>",
        TOP - 6,
        axis + HALF + 14,
        WIDTH - RIGHT
    );
    for (i, w) in t.weeks.iter().enumerate() {
        let x = LEFT + step * i as i64 + (step - bar) / 2;
        if w.kept > 0 {
            let h = (w.kept as i64 * HALF / max_count).max(2);
            let _ = write!(
                out,
                "<rect class=\"bar-kept\" x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{h}\"/>",
                axis - h
            );
        }
        if w.broken > 0 {
            let h = (w.broken as i64 * HALF / max_count).max(2);
            let _ = write!(
                out,
                "<rect class=\"bar-broken\" x=\"{x}\" y=\"{axis}\" width=\"{bar}\" height=\"{h}\"/>"
            );
        }
    }
    // The median panel: a dashed line at the window, a dot per week.
    let _ = write!(
        out,
        "<text class=\"chart-label\" x=\"{LEFT}\" y=\"{}\">median first response (business time)</text>\
         <line class=\"chart-axis\" x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
        median_top - 8,
        median_top + MEDIAN,
        WIDTH - RIGHT,
        median_top + MEDIAN
    );
    if let Some(window) = t.window {
        let y = y_secs(window);
        let _ = write!(
            out,
            "<line class=\"chart-window\" x1=\"{LEFT}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/>\
             <text class=\"chart-label\" x=\"{}\" y=\"{}\" text-anchor=\"end\">promise {}</text>",
            WIDTH - RIGHT,
            WIDTH - RIGHT,
            y - 5,
            escape(&span_words(chrono::TimeDelta::seconds(window)))
        );
    }
    for (i, w) in t.weeks.iter().enumerate() {
        if let Some(m) = w.median_first_response {
            let cx = LEFT + step * i as i64 + step / 2;
            let over = t.window.is_some_and(|win| m > win);
            let _ = write!(
                out,
                "<circle class=\"{}\" cx=\"{cx}\" cy=\"{}\" r=\"4\"/>",
                if over { "dot-late" } else { "dot" },
                y_secs(m)
            );
        }
    }
    // Week labels: as many as fit.
    let every = ((weeks + 6) / 7).max(1) as usize;
    for (i, w) in t.weeks.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let x = LEFT + step * i as i64 + step / 2;
        let _ = write!(
            out,
            "<text class=\"chart-label\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            height - 4,
            escape(&w.starts)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::WeekRecord;

    fn record() -> TypeRecord {
        TypeRecord {
            id: "question".into(),
            name: "Questions <&>".into(),
            requests: 3,
            kinds: Vec::new(),
            median_first_response: Some(3600),
            median_words: Some("1 h".into()),
            window: Some(7200),
            window_words: "within 2 business hours".into(),
            weeks: vec![
                WeekRecord {
                    starts: "2 Nov".into(),
                    kept: 2,
                    broken: 0,
                    median_first_response: Some(1800),
                    median_words: None,
                },
                WeekRecord {
                    starts: "9 Nov".into(),
                    kept: 0,
                    broken: 1,
                    median_first_response: Some(9000),
                    median_words: None,
                },
            ],
        }
    }

    #[test]
    fn bars_go_up_for_kept_and_down_for_broken_and_words_say_the_same() {
        let svg = svg(&record(), "t0");
        assert_eq!(svg.matches("class=\"bar-kept\"").count(), 1);
        assert_eq!(svg.matches("class=\"bar-broken\"").count(), 1);
        assert_eq!(svg.matches("class=\"dot-late\"").count(), 1, "{svg}");
        assert_eq!(svg.matches("class=\"dot\"").count(), 1);
        assert!(svg.contains("Questions &lt;&amp;&gt;: over 2 weeks, 2 promises kept and 1 broken; most broken in the week of 9 Nov (1). Median first response 1 h; we promise within 2 business hours."), "{svg}");
        assert!(!svg.contains("<&>"));
        assert!(!svg.contains("<script"));
    }
}
