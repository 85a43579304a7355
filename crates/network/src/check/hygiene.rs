//! Hygiene with CIS AWS Foundations Benchmark v3.0.0 references: default security groups
//! that allow traffic (5.4), administrative ports open to the world in security groups (5.2,
//! 5.3) and network ACLs (5.1), peering routes wider than the peer (5.5).

use rampart_core::ControlId;

use crate::addr::{AddrSet, Cidr};
use crate::engine::Model;
use crate::finding::{Finding, Severity, rules};
use crate::inventory::{RouteTarget, RulePeer};
use crate::traffic::TrafficSet;

/// Runs every hygiene rule.
pub(super) fn hygiene(m: &Model<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let admin = TrafficSet::tcp_ports(&m.cfg.admin_ports);
    for g in &m.inv.groups {
        if g.name == "default" && !(g.ingress.is_empty() && g.egress.is_empty()) {
            out.push(
                Finding::new(
                    rules::DEFAULT_GROUP_ALLOWS_TRAFFIC,
                    Some(ControlId::Net3),
                    Severity::Low,
                    g.id.as_str(),
                    format!(
                        "default security group {} has {} inbound and {} outbound rules; it should have none",
                        g.id,
                        g.ingress.len(),
                        g.egress.len()
                    ),
                )
                .with_related(&[ControlId::Acc4]),
            );
        }
        let open: TrafficSet = g
            .ingress
            .iter()
            .filter(|r| matches!(r.peer, RulePeer::Cidr(c) if c.is_any()))
            .fold(TrafficSet::none(), |acc, r| {
                acc.union(&r.traffic.intersection(&admin))
            });
        if !open.is_empty() {
            out.push(
                Finding::new(
                    rules::ADMIN_PORT_OPEN_TO_WORLD,
                    Some(ControlId::Acc5),
                    Severity::High,
                    g.id.as_str(),
                    format!(
                        "security group {} admits {open} from 0.0.0.0/0 or ::/0",
                        g.id
                    ),
                )
                .with_related(&[ControlId::Net3]),
            );
        }
    }
    for n in &m.inv.nacls {
        let mut inbound: Vec<_> = n.entries.iter().filter(|e| !e.egress).collect();
        inbound.sort_by_key(|e| e.number);
        // Entries for the whole address space decide for every source; narrower ones do not.
        // CIS 5.1 names the remote administration ports 22 and 3389.
        let mut remaining = TrafficSet::tcp_ports(&[22, 3389]);
        let mut open = TrafficSet::none();
        let mut numbers = Vec::new();
        for e in inbound.iter().filter(|e| e.cidr.is_any()) {
            let hit = remaining.intersection(&e.traffic);
            if e.allow && !hit.is_empty() {
                open = open.union(&hit);
                numbers.push(e.number.to_string());
            }
            remaining = remaining.difference(&hit);
        }
        if !open.is_empty() {
            out.push(Finding::new(
                rules::NACL_ADMIN_PORT_OPEN_TO_WORLD,
                Some(ControlId::Acc5),
                Severity::Medium,
                n.id.as_str(),
                format!(
                    "network ACL {} admits {open} from the whole internet (rules {})",
                    n.id,
                    numbers.join(", ")
                ),
            ));
        }
    }
    for rt in &m.inv.route_tables {
        for r in &rt.routes {
            let RouteTarget::Peering(p) = &r.target else {
                continue;
            };
            let Some(needed) = peer_blocks(m, p, rt.vpc.as_str()) else {
                continue;
            };
            if !needed.covers(&r.destination.to_set()) {
                out.push(Finding::new(
                    rules::PEERING_ROUTE_TOO_WIDE,
                    Some(ControlId::Net1),
                    Severity::Medium,
                    rt.id.as_str(),
                    format!("route table {} sends {} through {p}, wider than the peer's blocks ({needed})", rt.id, r.destination),
                ));
            }
        }
    }
    out
}

/// The address blocks on the far side of a peering, seen from `own_vpc`: the provider's
/// declared blocks, the peer VPC's blocks from the inventory, or those the peering lists.
fn peer_blocks(m: &Model<'_>, p: &crate::ident::PeeringId, own_vpc: &str) -> Option<AddrSet> {
    if let Some(provider) = m.cfg.providers.iter().find(|pr| pr.peerings.contains(p)) {
        return Some(AddrSet::of(provider.cidrs.iter().copied()));
    }
    let peering = m
        .peering_index
        .get(p)
        .and_then(|i| m.inv.peerings.get(*i))?;
    let far = if peering.requester.vpc.as_str() == own_vpc {
        &peering.accepter
    } else {
        &peering.requester
    };
    let from_inventory: Vec<Cidr> = m
        .vpc_index
        .get(far.vpc.as_str())
        .and_then(|v| m.inv.vpcs.get(*v))
        .map(|v| v.cidrs.clone())
        .unwrap_or_default();
    let blocks = if from_inventory.is_empty() {
        far.cidrs.clone()
    } else {
        from_inventory
    };
    (!blocks.is_empty()).then(|| AddrSet::of(blocks))
}
