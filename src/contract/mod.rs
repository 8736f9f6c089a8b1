//! TEMPORARY STUB (main branch) — replaced by the contract branch on merge.
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
pub struct Contract;
#[derive(Debug)]
pub struct Diagnostic;
impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("x")
    }
}
#[derive(Debug, Clone, Copy)]
pub enum Timer {
    FirstResponse,
}
impl std::str::FromStr for Timer {
    type Err = String;
    fn from_str(_: &str) -> Result<Self, String> {
        Ok(Timer::FirstResponse)
    }
}
pub fn parse(_s: &str, _f: &str) -> Result<Contract, Vec<Diagnostic>> {
    Ok(Contract)
}
pub fn render_html(_c: &Contract) -> String {
    String::new()
}
pub fn render_markdown(_c: &Contract) -> String {
    String::new()
}
impl Contract {
    pub fn version(&self) -> &str {
        "v"
    }
    pub fn version_short(&self) -> &str {
        "v"
    }
    pub fn name(&self) -> &str {
        "n"
    }
    pub fn due(
        &self,
        _t: &str,
        _c: Option<&str>,
        _timer: Timer,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Tz>, String> {
        Ok(at.with_timezone(&chrono_tz::UTC))
    }
}
