//! The backtest report's chart: a request type's first-response times as
//! marks on a business-time axis, with the window as a line — one band per
//! contract, so a baseline and a new contract read side by side. Inline SVG
//! drawn here: no script, no network, nothing to install to view it.
//!
//! Within the window is a filled circle, outside it a cross: the shape says
//! it, not only the colour.

use std::fmt::Write as _;

use super::{business_words, escape};

/// One band: a contract's window and the responses measured under it.
pub struct Panel<'a> {
    pub label: &'a str,
    /// Business seconds; `None` when the contract has no such type.
    pub window: Option<i64>,
    /// (business seconds, within the window).
    pub samples: &'a [(i64, bool)],
}

const WIDTH: i64 = 720;
const LEFT: i64 = 110;
const RIGHT: i64 = 24;
const BAND: i64 = 64;
const TOP: i64 = 12;
const AXIS: i64 = 46;

/// A `<figure>` with the chart and a caption that says the same in words.
pub fn figure(title: &str, panels: &[Panel<'_>]) -> String {
    let max = panels
        .iter()
        .flat_map(|p| p.samples.iter().map(|s| s.0).chain(p.window))
        .max()
        .unwrap_or(0)
        .max(60);
    // A little room right of the furthest mark.
    let max = max + max / 20;
    let plot = WIDTH - LEFT - RIGHT;
    let x = |secs: i64| LEFT + secs.clamp(0, max) * plot / max;
    let height = TOP + BAND * panels.len() as i64 + AXIS;
    let words: Vec<String> = panels
        .iter()
        .map(|p| {
            let met = p.samples.iter().filter(|s| s.1).count();
            match p.window {
                Some(w) => format!(
                    "{}: {met} of {} first responses within the {} window",
                    p.label,
                    p.samples.len(),
                    business_words(Some(w))
                ),
                None => format!("{}: no such request type", p.label),
            }
        })
        .collect();
    let summary = words.join("; ");
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\">\
         <title>{} — {}</title>",
        escape(title),
        escape(&summary)
    );
    for (i, p) in panels.iter().enumerate() {
        let top = TOP + BAND * i as i64;
        let mid = top + BAND / 2;
        let _ = write!(
            svg,
            "<rect x=\"{LEFT}\" y=\"{}\" width=\"{plot}\" height=\"{}\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"13\" text-anchor=\"end\" fill=\"#1d2330\">{}</text>",
            top + 4,
            BAND - 8,
            if i % 2 == 0 { "#f3f5f8" } else { "#eaeef3" },
            LEFT - 8,
            mid + 4,
            escape(p.label)
        );
        for (k, &(secs, met)) in p.samples.iter().enumerate() {
            let cx = x(secs);
            // Spread equal times over five rows so they do not hide each other.
            let cy = mid - 16 + (k as i64 % 5) * 8;
            if met {
                let _ = write!(
                    svg,
                    "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"3.5\" fill=\"#1d6b3a\"/>"
                );
            } else {
                let _ = write!(
                    svg,
                    "<path d=\"M{} {}l7 7m0 -7l-7 7\" stroke=\"#a1262b\" stroke-width=\"2\"/>",
                    cx - 3,
                    cy - 3
                );
            }
        }
        if let Some(w) = p.window {
            let wx = x(w);
            let _ = write!(
                svg,
                "<line x1=\"{wx}\" y1=\"{}\" x2=\"{wx}\" y2=\"{}\" stroke=\"#1d2330\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/>\
                 <text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#1d2330\">window {}</text>",
                top + 2,
                top + BAND - 2,
                wx + 4,
                top + 14,
                escape(&business_words(Some(w)))
            );
        }
    }
    let axis_y = TOP + BAND * panels.len() as i64 + 4;
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"#1d2330\"/>",
        LEFT + plot
    );
    for tick in 0..=4 {
        let secs = max * tick / 4;
        let tx = x(secs);
        let _ = write!(
            svg,
            "<line x1=\"{tx}\" y1=\"{axis_y}\" x2=\"{tx}\" y2=\"{}\" stroke=\"#1d2330\"/>\
             <text x=\"{tx}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#1d2330\">{}</text>",
            axis_y + 5,
            axis_y + 18,
            escape(&business_words(Some(secs)))
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" fill=\"#4a5263\">business time to the first response</text></svg>",
        LEFT + plot,
        axis_y + 30
    );
    format!(
        "<figure><figcaption>{}</figcaption>{svg}<p>{}. ● within the window, × outside it.</p></figure>\n",
        escape(title),
        escape(&summary)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_fall_on_either_side_of_the_window_line() {
        let samples = [(1800, true), (7200, true), (30_000, false)];
        let html = figure(
            "Questions <&>",
            &[
                Panel {
                    label: "baseline",
                    window: Some(4 * 3600),
                    samples: &samples,
                },
                Panel {
                    label: "new",
                    window: Some(2 * 3600),
                    samples: &[(1800, true), (7200, true), (30_000, false)],
                },
            ],
        );
        assert!(html.contains("Questions &lt;&amp;&gt;"));
        assert_eq!(html.matches("<circle").count(), 4);
        assert_eq!(html.matches("<path").count(), 2);
        assert_eq!(
            html.matches("stroke-dasharray").count(),
            2,
            "a window per band"
        );
        assert!(html.contains("window 4 h") && html.contains("window 2 h"));
        assert!(html.contains("baseline: 2 of 3 first responses within the 4 h window"));
        assert!(!html.contains("<script"));
        // The 4h line lies right of the 2h one.
        let pos = |w: &str| {
            let i = html.find(&format!("window {w}")).unwrap();
            let x = &html[..i];
            let at = x.rfind("x=\"").unwrap() + 3;
            x[at..].split('"').next().unwrap().parse::<i64>().unwrap()
        };
        assert!(pos("4 h") > pos("2 h"));
    }
}
