//! The environment matrix (NET-1, NET-2 evidence): which flows exist between environments,
//! from the internet and to and from providers, and its server-rendered SVG.

use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::Model;
use crate::traffic::TrafficSet;

/// What a cell of the matrix says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellState {
    /// No flow.
    None,
    /// Flows that the policy allows (internet to the front door, us to the provider).
    Allowed,
    /// Flows that break a control.
    Violation,
    /// Not computed: inside one environment, or out to the internet.
    NotComputed,
}

/// One cell: flows from a row party to a column party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// The source (environment, `internet` or `provider NAME`).
    pub from: String,
    /// The destination.
    pub to: String,
    /// What the flows mean.
    pub state: CellState,
    /// How many (source, destination) flows were found.
    pub flows: usize,
    /// The union of their traffic.
    pub traffic: TrafficSet,
}

/// Rows and columns are the same parties: environments, then the internet, then providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matrix {
    /// The parties, in row (and column) order.
    pub parties: Vec<String>,
    /// Every cell, row by row.
    pub cells: Vec<Cell>,
    #[serde(skip)]
    environments: usize,
}

/// The name of the internet party.
pub const INTERNET: &str = "internet";

impl Matrix {
    /// An empty matrix for the model's environments and the configured providers.
    pub fn new(model: &Model<'_>) -> Self {
        let mut envs: Vec<String> = model
            .vpc_env
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        envs.sort();
        envs.dedup();
        let environments = envs.len();
        let mut parties = envs;
        parties.push(INTERNET.to_owned());
        parties.extend(model.cfg.providers.iter().map(|p| provider_party(&p.name)));
        let mut cells = Vec::with_capacity(parties.len() * parties.len());
        for (r, from) in parties.iter().enumerate() {
            for (c, to) in parties.iter().enumerate() {
                let both_external = r >= environments && c >= environments;
                let state = if r == c || both_external || to == INTERNET {
                    CellState::NotComputed
                } else {
                    CellState::None
                };
                cells.push(Cell {
                    from: from.clone(),
                    to: to.clone(),
                    state,
                    flows: 0,
                    traffic: TrafficSet::none(),
                });
            }
        }
        Self {
            parties,
            cells,
            environments,
        }
    }

    /// The environment names (the first rows).
    pub fn environments(&self) -> &[String] {
        self.parties.get(..self.environments).unwrap_or(&[])
    }

    /// Records `flows` flows; a violation outranks an allowed flow in the same cell.
    pub fn record(
        &mut self,
        from: &str,
        to: &str,
        violation: bool,
        flows: usize,
        traffic: &TrafficSet,
    ) {
        if let Some(cell) = self.cells.iter_mut().find(|c| c.from == from && c.to == to) {
            cell.flows += flows;
            cell.traffic = cell.traffic.union(traffic);
            cell.state = match (cell.state, violation) {
                (_, true) | (CellState::Violation, _) => CellState::Violation,
                _ => CellState::Allowed,
            };
        }
    }

    /// The cell from one party to another.
    pub fn cell(&self, from: &str, to: &str) -> Option<&Cell> {
        self.cells.iter().find(|c| c.from == from && c.to == to)
    }
}

/// The party name of a provider.
pub fn provider_party(name: &str) -> String {
    format!("provider {name}")
}

/// Renders the matrix as a self-contained SVG document: no script, no external reference,
/// every text escaped. Cells are red for violations, green for allowed flows, white for
/// none and grey when not computed; each shows its flow count and, as a tooltip, its traffic.
pub fn matrix_svg(matrix: &Matrix) -> String {
    const CELL: usize = 96;
    const HEAD: usize = 150;
    let n = matrix.parties.len();
    let size = HEAD + CELL * n + 10;
    let mut svg = String::with_capacity(512 + n * n * 256);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}" role="img" aria-label="environment matrix" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<title>Flows between environments (rows: source, columns: destination)</title>"#
    );
    for (i, party) in matrix.parties.iter().enumerate() {
        let pos = HEAD + i * CELL + CELL / 2;
        let name = escape(party);
        let _ = write!(
            svg,
            r#"<text x="{}" y="{pos}" text-anchor="end" dominant-baseline="middle">{name}</text>"#,
            HEAD - 8
        );
        let _ = write!(
            svg,
            r#"<text x="{pos}" y="{}" text-anchor="start" transform="rotate(-45 {pos} {})">{name}</text>"#,
            HEAD - 8,
            HEAD - 8
        );
    }
    for (r, from) in matrix.parties.iter().enumerate() {
        for (c, to) in matrix.parties.iter().enumerate() {
            let Some(cell) = matrix.cell(from, to) else {
                continue;
            };
            let (fill, label) = match cell.state {
                CellState::Violation => ("#f4a6a6", format!("{} ✗", cell.flows)),
                CellState::Allowed => ("#b7e4b0", cell.flows.to_string()),
                CellState::None => ("#ffffff", "0".to_owned()),
                CellState::NotComputed => ("#e5e5e5", "–".to_owned()),
            };
            let (x, y) = (HEAD + c * CELL, HEAD + r * CELL);
            let tip = escape(&format!(
                "{from} → {to}: {} flows, {}",
                cell.flows, cell.traffic
            ));
            let _ = write!(
                svg,
                r##"<g><title>{tip}</title><rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="{fill}" stroke="#888"/><text x="{}" y="{}" text-anchor="middle" dominant-baseline="middle">{}</text></g>"##,
                x + CELL / 2,
                y + CELL / 2,
                escape(&label)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Escapes text for XML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NetworkConfig;
    use crate::inventory::Inventory;

    fn two_envs() -> Matrix {
        let cfg = NetworkConfig::default();
        let inv = Inventory::default();
        let model = Model::new(&inv, &cfg);
        let mut m = Matrix::new(&model);
        m.parties = vec![
            "prod<x>".to_owned(),
            "staging".to_owned(),
            INTERNET.to_owned(),
        ];
        m.environments = 2;
        m.cells = Vec::new();
        for from in m.parties.clone() {
            for to in m.parties.clone() {
                m.cells.push(Cell {
                    from: from.clone(),
                    to,
                    state: CellState::None,
                    flows: 0,
                    traffic: TrafficSet::none(),
                });
            }
        }
        m
    }

    #[test]
    fn svg_escapes_names_and_has_no_script() {
        let mut m = two_envs();
        m.record("staging", "prod<x>", true, 3, &TrafficSet::all());
        let svg = matrix_svg(&m);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("prod&lt;x&gt;"));
        assert!(!svg.contains("prod<x>"));
        assert!(!svg.contains("<script"));
        assert!(svg.contains("3 ✗"));
        assert!(svg.contains("#f4a6a6"));
    }

    #[test]
    fn a_violation_is_never_downgraded_by_an_allowed_flow() {
        let mut m = two_envs();
        m.record("staging", "prod<x>", true, 1, &TrafficSet::all());
        m.record("staging", "prod<x>", false, 1, &TrafficSet::all());
        assert_eq!(
            m.cell("staging", "prod<x>").map(|c| (c.state, c.flows)),
            Some((CellState::Violation, 2))
        );
    }
}
