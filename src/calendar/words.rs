//! Business time in words, one convention everywhere a person reads it —
//! pages, alerts, digests, reports: "2 h 05 m", "45 m", "under 1 m".
//! Hours run on past 24 ("27 h 30 m"): this is business *time*, and a
//! "day" of 24 business hours is no day anyone works.

/// `secs` of business time in words; negative counts as none.
pub fn business_words(secs: i64) -> String {
    let s = secs.max(0);
    let (h, m) = (s / 3600, s % 3600 / 60);
    match (h, m) {
        (0, 0) if s > 0 => "under 1 m".into(),
        (0, m) => format!("{m} m"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m:02} m"),
    }
}

#[cfg(test)]
mod tests {
    use super::business_words;

    #[test]
    fn hours_run_on_and_minutes_are_two_digits() {
        for (secs, words) in [
            (0, "0 m"),
            (42, "under 1 m"),
            (60, "1 m"),
            (65, "1 m"),
            (3_600, "1 h"),
            (3_900, "1 h 05 m"),
            (90_000, "25 h"),
            (99_000, "27 h 30 m"),
            (-5, "0 m"),
        ] {
            assert_eq!(business_words(secs), words, "{secs}");
        }
    }
}
