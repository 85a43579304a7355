//! NET-3 and ACC-4 (what the internet reaches, against the allow-list) and ACC-5
//! (administrative ports reachable only from the gateway).

use rampart_core::ControlId;

use crate::addr::AddrSet;
use crate::engine::{CompiledPeer, Model, Party};
use crate::finding::{Finding, Severity, rules};
use crate::matrix::{INTERNET, Matrix};
use crate::traffic::TrafficSet;

/// Every endpoint with a public address: what the internet reaches, and whether the
/// allow-list admits it.
pub(super) fn internet(
    m: &Model<'_>,
    matrix: &mut Matrix,
    evaluations: &mut usize,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let internet = Party::Internet(AddrSet::internet());
    let allowed = TrafficSet::tcp_ports(&m.cfg.internet.ports);
    let admin = TrafficSet::tcp_ports(&m.cfg.admin_ports);
    for (e, ep) in m.inv.endpoints.iter().enumerate() {
        if !ep.public {
            continue;
        }
        *evaluations += 1;
        let verdict = m.evaluate(&internet, &Party::Endpoint(e), &TrafficSet::all(), false);
        let Some(flow) = verdict.flow() else { continue };
        let front = is_front_door(m, e);
        let extra = if front {
            flow.traffic.difference(&allowed)
        } else {
            flow.traffic.clone()
        };
        let env = m.endpoint_env(e).map(ToString::to_string);
        if let Some(env) = &env {
            matrix.record(INTERNET, env, !extra.is_empty(), 1, &flow.traffic);
        }
        if extra.is_empty() {
            continue;
        }
        let traced = m.evaluate(&internet, &Party::Endpoint(e), &extra, true);
        let path = traced.flow().map(|f| f.path.clone()).unwrap_or_default();
        let from = flow
            .addresses
            .as_ref()
            .map_or_else(|| "the internet".to_owned(), ToString::to_string);
        let finding = if front {
            let severity = if extra.intersects(&admin) {
                Severity::High
            } else {
                Severity::Medium
            };
            Finding::new(
                rules::PORT_OUTSIDE_ALLOW_LIST,
                Some(ControlId::Net3),
                severity,
                ep.id.as_str(),
                format!(
                    "front door {} exposes {extra} to {from}, beyond the allowed {allowed}",
                    m.endpoint_label(e)
                ),
            )
            .with_related(&[ControlId::Acc4])
        } else {
            Finding::new(
                rules::PUBLIC_RESOURCE,
                Some(ControlId::Acc4),
                Severity::High,
                ep.id.as_str(),
                format!(
                    "{} is not the declared front door but {from} reaches it: {extra}",
                    m.endpoint_label(e)
                ),
            )
            .with_related(&[ControlId::Net3])
        };
        out.push(finding.with_path(path));
    }
    out
}

/// ACC-5: for every endpoint other than the gateway, any source other than the gateway that
/// reaches an administrative port it listens on.
pub(super) fn admin_ports(m: &Model<'_>, evaluations: &mut usize) -> Vec<Finding> {
    let mut out = Vec::new();
    let admin = TrafficSet::tcp_ports(&m.cfg.admin_ports);
    let gateway = AddrSet::of(m.cfg.gateway.addresses.iter().copied());
    let internet = Party::Internet(AddrSet::internet().difference(&gateway));
    for (d, ep) in m.inv.endpoints.iter().enumerate() {
        if m.ep_gateway.get(d).copied().unwrap_or(false) {
            continue;
        }
        let wanted = match &ep.listening {
            Some(l) => l.intersection(&admin),
            None => admin.clone(),
        };
        // Cheap filter first: only inbound rules that admit an admin port matter.
        let rules: Vec<(&CompiledPeer, &TrafficSet)> = m
            .ep_groups
            .get(d)
            .into_iter()
            .flatten()
            .filter_map(|g| m.group_rules.get(*g))
            .flat_map(|[inbound, _]| inbound.iter())
            .filter(|r| r.traffic.intersects(&wanted))
            .map(|r| (&r.peer, &r.traffic))
            .collect();
        if wanted.is_empty() || rules.is_empty() {
            continue;
        }
        // Only the admin ports some inbound rule admits can be reached at all.
        let admitted = m
            .ep_groups
            .get(d)
            .into_iter()
            .flatten()
            .filter_map(|g| m.group_rules.get(*g))
            .flat_map(|[inbound, _]| inbound.iter())
            .fold(TrafficSet::none(), |acc, r| acc.union(&r.traffic));
        let wanted = wanted.intersection(&admitted);
        if ep.public {
            *evaluations += 1;
            if let Some(flow) = m
                .evaluate(&internet, &Party::Endpoint(d), &wanted, true)
                .flow()
            {
                out.push(
                    Finding::new(
                        rules::ADMIN_PORT_BYPASSES_GATEWAY,
                        Some(ControlId::Acc5),
                        Severity::High,
                        ep.id.as_str(),
                        format!(
                            "administrative {} of {} is reachable from the internet ({}), not only through the gateway",
                            flow.traffic,
                            m.endpoint_label(d),
                            flow.addresses.as_ref().map_or_else(String::new, ToString::to_string)
                        ),
                    )
                    .with_related(&[ControlId::Acc4])
                    .with_path(flow.path.clone()),
                );
            }
        }
        let mut witness = None;
        let mut count = 0;
        let mut traffic = TrafficSet::none();
        // Routes and ACLs decide per subnet: screen each source subnet once.
        // The key holds the traffic the rules admit from this source, which is all it can get.
        let mut open_subnets: std::collections::HashMap<(Option<usize>, TrafficSet), bool> =
            std::collections::HashMap::new();
        for (s, named) in candidates(m, d, &rules) {
            let subnet = m.ep_subnet.get(s).copied().flatten();
            let wanted = wanted.intersection(&named);
            let key = (subnet, wanted.clone());
            if !*open_subnets
                .entry(key)
                .or_insert_with(|| m.subnet_can_reach(s, d, &wanted))
            {
                continue;
            }
            let exempt = m
                .service_flows
                .iter()
                .filter(|(from, to, _)| {
                    from.get(s).copied().unwrap_or(false) && to.get(d).copied().unwrap_or(false)
                })
                .fold(TrafficSet::none(), |acc, (_, _, ports)| acc.union(ports));
            let wanted = wanted.difference(&exempt);
            if wanted.is_empty() {
                continue;
            }
            *evaluations += 1;
            if let Some(flow) = m
                .evaluate(&Party::Endpoint(s), &Party::Endpoint(d), &wanted, false)
                .flow()
            {
                count += 1;
                traffic = traffic.union(&flow.traffic);
                witness.get_or_insert(s);
                if count == SOURCES_COUNTED {
                    break;
                }
            }
        }
        let Some(w) = witness else { continue };
        let path = m.evaluate(&Party::Endpoint(w), &Party::Endpoint(d), &traffic, true);
        let others = match count {
            1 => String::new(),
            SOURCES_COUNTED => format!(" (and from at least {} other sources)", count - 1),
            _ => format!(" (and from {} other sources)", count - 1),
        };
        out.push(
            Finding::new(
                rules::ADMIN_PORT_BYPASSES_GATEWAY,
                Some(ControlId::Acc5),
                Severity::Medium,
                ep.id.as_str(),
                format!(
                    "administrative {traffic} of {} is reachable from {}, which is not the gateway{others}",
                    m.endpoint_label(d),
                    m.endpoint_label(w)
                ),
            )
            .with_path(path.flow().map(|f| f.path.clone()).unwrap_or_default()),
        );
    }
    out
}

/// Sources confirmed per destination before ACC-5 stops counting: one is proof, a few show
/// the extent, and a wide-open hub would otherwise cost one evaluation per endpoint of every
/// peered VPC.
const SOURCES_COUNTED: usize = 64;

/// Endpoints in the destination's VPC and peered VPCs that some admitting rule names and
/// that are not the gateway.
fn candidates(
    m: &Model<'_>,
    d: usize,
    rules: &[(&CompiledPeer, &TrafficSet)],
) -> Vec<(usize, TrafficSet)> {
    let Some(dv) = m.ep_vpc.get(d).copied().flatten() else {
        return Vec::new();
    };
    let mut vpcs = vec![dv];
    for p in m.vpc_peerings.get(dv).into_iter().flatten() {
        if let Some((a, b)) = m.peering_vpcs.get(*p) {
            vpcs.extend(a.iter().chain(b.iter()).filter(|v| **v != dv));
        }
    }
    vpcs.sort_unstable();
    vpcs.dedup();
    let mut out = Vec::new();
    for v in vpcs {
        for &s in m.vpc_endpoints.get(v).into_iter().flatten() {
            if s == d || m.ep_gateway.get(s).copied().unwrap_or(false) {
                continue;
            }
            let ip = m.inv.endpoints.get(s).and_then(|e| e.address);
            let addr = m.ep_addr.get(s);
            let groups = m.ep_groups.get(s);
            let mut named = TrafficSet::none();
            for (peer, traffic) in rules {
                let hit = match peer {
                    CompiledPeer::Addrs(cidrs) => match ip {
                        Some(ip) => cidrs.iter().any(|c| c.contains(ip)),
                        None => {
                            addr.is_some_and(|a| a.intersects(&AddrSet::of(cidrs.iter().copied())))
                        }
                    },
                    CompiledPeer::Group(g) => groups.is_some_and(|gs| gs.contains(g)),
                    CompiledPeer::Nothing => false,
                };
                if hit {
                    named = named.union(traffic);
                }
            }
            if !named.is_empty() {
                out.push((s, named));
            }
        }
    }
    out
}

/// Whether the allow-list names the endpoint.
fn is_front_door(m: &Model<'_>, e: usize) -> bool {
    m.front_door.get(e).copied().unwrap_or(false)
}
