//! The security page, verified: every control of `controls.md` with a status and the live
//! evidence behind it, rendered as HTML, JSON or Markdown.
//!
//! Collectors elsewhere turn facts into [`Finding`]s; this crate only assembles them into a
//! [`Report`] and renders it. Invariants: every control appears exactly once, in the page's
//! order; a control nobody checked says so ([`Status::NotChecked`]) and never passes by
//! default; rendered HTML escapes every piece of evidence.

use jiff::Timestamp;
use rampart_core::{ControlId, ControlSection};
use serde::Serialize;

/// The verdict on one control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The evidence shows the statement is true.
    Pass,
    /// The evidence shows the statement is false.
    Fail,
    /// rampart does not check this control yet, or could not gather evidence.
    NotChecked,
}

impl Status {
    /// A word for tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::NotChecked => "not checked",
        }
    }
}

/// The verdict and evidence for one control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The control.
    pub control: ControlId,
    /// The verdict.
    pub status: Status,
    /// One sentence.
    pub summary: String,
    /// The facts behind it, one per line.
    pub evidence: Vec<String>,
}

impl Finding {
    /// A finding with a verdict.
    pub fn new(
        control: ControlId,
        pass: bool,
        summary: impl Into<String>,
        evidence: Vec<String>,
    ) -> Self {
        Self {
            control,
            status: if pass { Status::Pass } else { Status::Fail },
            summary: summary.into(),
            evidence,
        }
    }

    /// A control that could not be checked, with the reason.
    pub fn not_checked(control: ControlId, why: impl Into<String>) -> Self {
        Self {
            control,
            status: Status::NotChecked,
            summary: why.into(),
            evidence: Vec::new(),
        }
    }
}

/// Every control with its finding.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the evidence was gathered.
    pub generated_at: Timestamp,
    /// One finding per control, in the page's order.
    pub findings: Vec<Finding>,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    id: &'static str,
    section: &'static str,
    statement: &'static str,
    status: Status,
    summary: &'a str,
    evidence: &'a [String],
}

impl Report {
    /// Builds a report from whatever findings were collected: a control without one is
    /// [`Status::NotChecked`]; if several were given for one control the first counts.
    pub fn assemble(generated_at: Timestamp, mut collected: Vec<Finding>) -> Self {
        let findings = ControlId::ALL
            .iter()
            .map(
                |&control| match collected.iter().position(|f| f.control == control) {
                    Some(at) => collected.swap_remove(at),
                    None => Finding::not_checked(
                        control,
                        "not checked yet: rampart does not collect evidence for this control yet",
                    ),
                },
            )
            .collect();
        Self {
            generated_at,
            findings,
        }
    }

    /// Counts of pass, fail and not checked.
    pub fn tally(&self) -> (usize, usize, usize) {
        let count = |s| self.findings.iter().filter(|f| f.status == s).count();
        (
            count(Status::Pass),
            count(Status::Fail),
            count(Status::NotChecked),
        )
    }

    /// JSON: `{generated_at, summary: {pass, fail, not_checked}, controls: [...]}`.
    pub fn to_json(&self) -> String {
        let (pass, fail, not_checked) = self.tally();
        let controls: Vec<JsonFinding<'_>> = self
            .findings
            .iter()
            .map(|f| JsonFinding {
                id: f.control.id(),
                section: f.control.section().title(),
                statement: f.control.statement(),
                status: f.status,
                summary: &f.summary,
                evidence: &f.evidence,
            })
            .collect();
        serde_json::to_string_pretty(&serde_json::json!({
            "generated_at": self.generated_at.to_string(),
            "summary": {"pass": pass, "fail": fail, "not_checked": not_checked},
            "controls": controls,
        }))
        .unwrap_or_else(|_| String::from("{}"))
    }

    /// Markdown: one table per section of the page.
    pub fn to_markdown(&self) -> String {
        let (pass, fail, not_checked) = self.tally();
        let mut out = format!(
            "# Security page, verified\n\nGenerated {}. {pass} pass, {fail} fail, {not_checked} not checked.\n",
            self.generated_at
        );
        for (section, findings) in self.sections() {
            out.push_str(&format!(
                "\n## {}\n\n| control | status | evidence |\n|---|---|---|\n",
                section.title()
            ));
            for f in findings {
                let mut cell = md_escape(&f.summary);
                for e in &f.evidence {
                    cell.push_str("<br>");
                    cell.push_str(&md_escape(e));
                }
                out.push_str(&format!(
                    "| **{}** {} | {} | {} |\n",
                    f.control.id(),
                    md_escape(f.control.statement()),
                    f.status.label(),
                    cell
                ));
            }
        }
        out
    }

    /// An HTML fragment (a `<section>` per part of the page), every text escaped; the
    /// admin UI and `to_html_page` wrap it.
    pub fn to_html_fragment(&self) -> String {
        let mut out = String::new();
        for (section, findings) in self.sections() {
            out.push_str(&format!(
                "<section class=\"controls\"><h2>{}</h2>",
                html_escape(section.title())
            ));
            for f in findings {
                out.push_str(&format!(
                    "<article class=\"control {cls}\"><header><span class=\"badge {cls}\">{label}</span> <b>{id}</b> {statement}</header><p>{summary}</p>",
                    cls = f.status.label().replace(' ', "-"),
                    label = f.status.label(),
                    id = f.control.id(),
                    statement = html_escape(f.control.statement()),
                    summary = html_escape(&f.summary),
                ));
                if !f.evidence.is_empty() {
                    out.push_str("<ul>");
                    for e in &f.evidence {
                        out.push_str(&format!("<li>{}</li>", html_escape(e)));
                    }
                    out.push_str("</ul>");
                }
                out.push_str("</article>");
            }
            out.push_str("</section>");
        }
        out
    }

    /// A complete, self-contained HTML page.
    pub fn to_html_page(&self) -> String {
        let (pass, fail, not_checked) = self.tally();
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Security page, verified</title><style>{CSS}</style></head><body><h1>Security page, verified</h1><p>Generated {}. <b>{pass}</b> pass, <b>{fail}</b> fail, <b>{not_checked}</b> not checked.</p>{}{}</body></html>",
            self.generated_at,
            self.to_svg_overview(),
            self.to_html_fragment()
        )
    }

    /// The page at a glance: one tile per control, grouped by section, colored by status,
    /// as a self-contained SVG (no script; every text escaped).
    pub fn to_svg_overview(&self) -> String {
        const W: usize = 64;
        const H: usize = 30;
        const GAP: usize = 6;
        let sections = self.sections();
        let rows = sections.len();
        let widest = sections.iter().map(|(_, f)| f.len()).max().unwrap_or(0);
        let width = 260 + widest * (W + GAP);
        let height = rows * (H + GAP) + GAP;
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"control status overview\" font-family=\"sans-serif\" font-size=\"12\">"
        );
        for (row, (section, findings)) in sections.iter().enumerate() {
            let y = GAP + row * (H + GAP);
            svg.push_str(&format!(
                "<text x=\"0\" y=\"{}\" fill=\"#1b1f24\">{}</text>",
                y + H / 2 + 4,
                html_escape(section.title())
            ));
            for (col, f) in findings.iter().enumerate() {
                let x = 260 + col * (W + GAP);
                let (fill, ink) = match f.status {
                    Status::Pass => ("#dafbe1", "#116329"),
                    Status::Fail => ("#ffebe9", "#a40e26"),
                    Status::NotChecked => ("#eaeef2", "#57606a"),
                };
                svg.push_str(&format!(
                    "<g><title>{id}: {label}. {summary}</title><rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{H}\" rx=\"5\" fill=\"{fill}\" stroke=\"{ink}\"/><text x=\"{tx}\" y=\"{ty}\" text-anchor=\"middle\" fill=\"{ink}\" font-weight=\"600\">{id}</text></g>",
                    id = f.control.id(),
                    label = f.status.label(),
                    summary = html_escape(&f.summary),
                    tx = x + W / 2,
                    ty = y + H / 2 + 4,
                ));
            }
        }
        svg.push_str("</svg>");
        svg
    }

    fn sections(&self) -> Vec<(ControlSection, Vec<&Finding>)> {
        let mut out: Vec<(ControlSection, Vec<&Finding>)> = Vec::new();
        for f in &self.findings {
            let section = f.control.section();
            match out.last_mut() {
                Some((s, list)) if *s == section => list.push(f),
                _ => out.push((section, vec![f])),
            }
        }
        out
    }
}

/// Styles shared by the standalone page and the admin UI.
pub const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}\
.control{border:1px solid #d0d7de;border-radius:6px;padding:.5rem .8rem;margin:.5rem 0}\
.badge{display:inline-block;min-width:6.5rem;text-align:center;border-radius:1rem;padding:.1rem .6rem;font-size:.8rem;font-weight:600}\
.badge.pass{background:#dafbe1;color:#116329}.badge.fail{background:#ffebe9;color:#a40e26}.badge.not-checked{background:#eaeef2;color:#57606a}\
.control p{margin:.3rem 0;color:#57606a}.control ul{margin:.2rem 0;font-size:.9rem}";

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn md_escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::UNIX_EPOCH
    }

    #[test]
    fn every_control_appears_once_and_unchecked_ones_say_so() {
        let report = Report::assemble(
            now(),
            vec![Finding::new(ControlId::Enc2, true, "redirects", vec![])],
        );
        assert_eq!(report.findings.len(), 25);
        assert_eq!(report.tally(), (1, 0, 24));
        let ids: Vec<_> = report.findings.iter().map(|f| f.control).collect();
        assert_eq!(ids, ControlId::ALL);
    }

    #[test]
    fn evidence_is_escaped_in_html() {
        let report = Report::assemble(
            now(),
            vec![Finding::new(
                ControlId::Acc1,
                false,
                "dup",
                vec!["<script>alert(1)</script>".into()],
            )],
        );
        let html = report.to_html_page();
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;"));
    }

    #[test]
    fn the_overview_has_one_tile_per_control_colored_by_status() {
        let report = Report::assemble(
            now(),
            vec![
                Finding::new(ControlId::Enc2, true, "ok", vec![]),
                Finding::new(ControlId::Acc1, false, "<bad>", vec![]),
            ],
        );
        let svg = report.to_svg_overview();
        assert_eq!(svg.matches("<rect").count(), 25);
        assert_eq!(svg.matches("#dafbe1").count(), 1, "one pass");
        assert_eq!(svg.matches("#ffebe9").count(), 1, "one fail");
        assert!(!svg.contains("<bad>") && svg.contains("&lt;bad&gt;"));
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn json_and_markdown_carry_every_control() {
        let report = Report::assemble(now(), vec![]);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap_or_default();
        assert_eq!(json["controls"].as_array().map(Vec::len), Some(25));
        assert_eq!(json["summary"]["not_checked"], 25);
        let md = report.to_markdown();
        for c in ControlId::ALL {
            assert!(md.contains(c.id()), "{c}");
        }
    }
}
