//! The network segmentation checker of rampart (issue 8).
//!
//! It reads an inventory (AWS CLI JSON, a Terraform plan, or rampart's TOML), builds a
//! model of VPCs, subnets, route tables, network ACLs, security groups and endpoints, and
//! computes which flows are possible, each explained by the path of hops and the rules
//! that admit it. Checks turn flows into [`Finding`]s for the controls NET-1, NET-2, NET-3,
//! ACC-4, ACC-5 and EXT-2, plus hygiene with CIS references.
//!
//! Invariants: only [`load_inventory`] touches the disk; everything else is a pure function
//! of the inventory and the [`NetworkConfig`]; nothing the inventory holds can panic the
//! checker (dangling references are warnings); an empty inventory is an error, never a pass;
//! over-approximation is preferred where the input is incomplete, so a possible flow is
//! reported rather than missed.

mod addr;
mod check;
mod config;
mod engine;
mod finding;
mod ident;
mod import;
mod interval;
mod inventory;
mod matrix;
mod output;
mod summary;
mod traffic;

pub use addr::{AddrSet, BadCidr, Cidr};
pub use check::{Report, Stats, check};
pub use config::{ConfigError, Gateway, InternetAllow, NetworkConfig, Provider};
pub use engine::{Flow, Model, Party, UnknownParty, Verdict};
pub use finding::{Finding, Hop, Rule, Severity, rules};
pub use ident::{
    BadId, EndpointId, GatewayId, GroupId, NaclId, PeeringId, RouteTableId, SubnetId, VpcId,
};
pub use import::{
    CONFIG_FILE_NAME, LoadError, MAX_FILE_BYTES, import_json, import_toml, load_inventory,
};
pub use interval::IntervalSet;
pub use inventory::{
    Endpoint, EndpointKind, GroupRule, InternetGateway, Inventory, Nacl, NaclEntry, PeerSide,
    Peering, Route, RouteTable, RouteTarget, RulePeer, SecurityGroup, Subnet, Tags, Vpc,
};
pub use matrix::{Cell, CellState, INTERNET, Matrix, matrix_svg};
pub use output::{render_matrix_table, render_sarif, render_table, render_verdict};
pub use summary::{ControlStatus, ControlSummary, NETWORK_CONTROLS, summarize};
pub use traffic::{BadPortRange, BadProtocol, PortRange, Protocol, TrafficSet};

/// Explains whether `from` can reach `to` with `wanted` traffic (names as
/// [`Model::party`] resolves them), hop by hop.
pub fn explain(
    inventory: &Inventory,
    config: &NetworkConfig,
    from: &str,
    to: &str,
    wanted: &TrafficSet,
) -> Result<Verdict, UnknownParty> {
    let model = Model::new(inventory, config);
    let from = model.party(from)?;
    let to = model.party(to)?;
    Ok(model.evaluate(&from, &to, wanted, true))
}
