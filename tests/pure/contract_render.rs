//! The client-readable document, as Markdown and HTML. Needs the real
//! calendar (the contracts parse durations).

use keepword::contract::{Contract, parse, render_html, render_markdown};

fn shipped() -> Contract {
    parse(
        include_str!("../../config/contract.toml"),
        "config/contract.toml",
    )
    .unwrap_or_else(|d| panic!("{d}"))
}

#[test]
fn markdown_says_what_clients_need_to_know() {
    let c = shipped();
    let md = render_markdown(&c);
    assert!(
        md.starts_with("# Northwind Studio client communication contract\n"),
        "{md}"
    );
    for expected in [
        "In effect from **1 November 2026**",
        "<https://support.example.com/contract>",
        "## Urgent matters",
        "### Urgent: production down or security incident",
        "We reply within 30 minutes, around the clock.",
        "We reply within 4 business hours (Mon–Thu 09:00–17:00, Fri 09:00–12:30 and 13:30–17:00, Europe/Berlin).",
        "We resolve the request within 5 business days.",
        "by email to **support@example.com**",
        "by pager **+49 30 1234567 (24/7)**",
        "Thursday, 24 December 2026",
        "Friday, 1 January 2027",
        "we alert oncall",
    ] {
        assert!(md.contains(expected), "missing {expected:?} in:\n{md}");
    }
    assert!(md.contains(c.version_short()));
    // The page is public: no client is named, nor what one was promised.
    for client in c.clients() {
        assert!(
            !md.contains(&client.name),
            "{} on the public page",
            client.name
        );
    }
    assert!(!md.contains("Client-specific"), "{md}");
    // Escalation contacts are roles; their addresses stay internal.
    assert!(!md.contains("oncall@example.com"));
    // Definition of every request type is there, in contract order.
    let urgent = md.find("### Urgent: production down").unwrap();
    let question = md.find("### Questions and change requests").unwrap();
    assert!(urgent < question);
}

#[test]
fn html_is_a_complete_page_with_the_same_content() {
    let c = shipped();
    let html = render_html(&c);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert!(html.contains("<style>"));
    assert!(
        !html.contains("<link"),
        "self-contained: no external stylesheet"
    );
    assert!(!html.contains("<script"), "no scripts");
    assert!(html.contains("<title>Northwind Studio client communication contract</title>"));
    assert!(html.contains("<h1>Northwind Studio client communication contract</h1>"));
    assert!(html.contains("We reply within 4 business hours (Mon–Thu 09:00–17:00, Fri 09:00–12:30 and 13:30–17:00, Europe/Berlin)."));
    assert!(html.contains("<li>Thursday, 24 December 2026</li>"));
    assert!(html.contains("<a href=\"https://support.example.com/contract\">"));
}

#[test]
fn contract_text_is_escaped() {
    let source = include_str!("../../config/contract.toml")
        .replace(
            "definition = \"Everything that is not urgent and not a bug: questions, content changes, new ideas.\"",
            "definition = \"<script>alert('x')</script> & *more*\"",
        )
        .replace("name = \"ACME Corp\"", "name = \"ACME <b>Corp</b>\"");
    let c = parse(&source, "c.toml").unwrap_or_else(|d| panic!("{d}"));
    let html = render_html(&c);
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; *more*"));
    assert!(!html.contains("<b>Corp"));
    let md = render_markdown(&c);
    assert!(
        md.contains("\\<script\\>alert('x')\\</script\\> \\& \\*more\\*"),
        "{md}"
    );
    assert!(!md.contains("<script>"));
}

#[test]
fn a_contract_without_holidays_or_overrides_has_no_empty_sections() {
    let source = include_str!("../fixtures/contracts/base.toml")
        .replace("holidays = [\"2026-12-24\"]\n", "")
        .replace(
            "overrides = { question = { first_response = \"2h\" } }\n",
            "",
        );
    let c = parse(&source, "c.toml").unwrap_or_else(|d| panic!("{d}"));
    let md = render_markdown(&c);
    assert!(!md.contains("### Holidays"), "{md}");
    assert!(!md.contains("Client-specific"), "{md}");
    assert!(
        md.contains("Mon 09:00–17:00, Fri 09:00–12:30 and 13:30–17:00 (time zone Europe/Berlin)."),
        "{md}"
    );
}
