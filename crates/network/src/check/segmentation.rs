//! NET-1 (each environment in its own VPCs, every peering declared) and NET-2 (no flow
//! between environments).

use std::collections::BTreeSet;

use rampart_core::{ControlId, Environment};

use crate::engine::{Model, Party};
use crate::finding::{Finding, Severity, rules};
use crate::inventory::RouteTarget;
use crate::traffic::TrafficSet;

/// VPCs without an environment, tags that disagree with the mapping, and resources tagged
/// for another environment than their VPC's.
pub(super) fn environments(m: &Model<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let tag = m.cfg.environment_tag.as_str();
    for (i, v) in m.inv.vpcs.iter().enumerate() {
        let env = m.vpc_env.get(i).and_then(Option::as_ref);
        let Some(env) = env else {
            out.push(Finding::new(
                rules::VPC_WITHOUT_ENVIRONMENT,
                Some(ControlId::Net1),
                Severity::Medium,
                v.id.as_str(),
                format!("VPC {} has no environment: no `{tag}` tag and no entry in network.environments", v.id),
            ));
            continue;
        };
        if let Some(tagged) = v.tags.value(tag).and_then(|t| Environment::parse(t).ok())
            && tagged != *env
        {
            out.push(Finding::new(
                rules::ENVIRONMENT_CONFLICT,
                Some(ControlId::Net1),
                Severity::Low,
                v.id.as_str(),
                format!("VPC {} is tagged `{tag}={tagged}` but the configuration maps it to {env}; the configuration wins", v.id),
            ));
        }
    }
    let subnet_vpc = |s: usize| m.subnet_vpc.get(s).copied().flatten();
    for (s, subnet) in m.inv.subnets.iter().enumerate() {
        let vpc_env = subnet_vpc(s)
            .and_then(|v| m.vpc_env.get(v))
            .and_then(Option::as_ref);
        if let (Some(own), Some(vpc_env)) = (
            subnet
                .tags
                .value(tag)
                .and_then(|t| Environment::parse(t).ok()),
            vpc_env,
        ) && own != *vpc_env
        {
            out.push(Finding::new(
                rules::MIXED_ENVIRONMENTS,
                Some(ControlId::Net1),
                Severity::High,
                subnet.id.as_str(),
                format!("subnet {} is tagged {own} but lives in a {vpc_env} VPC ({}): two environments share a network", subnet.id, subnet.vpc),
            ));
        }
    }
    for (e, ep) in m.inv.endpoints.iter().enumerate() {
        if let (Some(own), Some(vpc_env)) = (
            ep.tags.value(tag).and_then(|t| Environment::parse(t).ok()),
            m.endpoint_env(e),
        ) && own != *vpc_env
        {
            out.push(Finding::new(
                rules::MIXED_ENVIRONMENTS,
                Some(ControlId::Net1),
                Severity::High,
                ep.id.as_str(),
                format!("{} is tagged {own} but lives in a {vpc_env} VPC: two environments share a network", m.endpoint_label(e)),
            ));
        }
    }
    out
}

/// Every active peering must be declared, as one of ours or as a provider's; transit
/// gateway routes are reported as not modelled.
pub(super) fn peerings(m: &Model<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, p) in m.inv.peerings.iter().enumerate() {
        if !p.active {
            continue;
        }
        let provider = m
            .cfg
            .providers
            .iter()
            .find(|pr| pr.peerings.contains(&p.id));
        if m.cfg.peerings.contains(&p.id) || provider.is_some() {
            continue;
        }
        let (a, b) = m.peering_vpcs.get(i).copied().unwrap_or((None, None));
        let env = |v: Option<usize>| v.and_then(|v| m.vpc_env.get(v)).and_then(Option::as_ref);
        let side = |vpc: &crate::ident::VpcId, v: Option<usize>| match (v, env(v)) {
            (Some(_), Some(e)) => format!("{vpc} ({e})"),
            (Some(_), None) => format!("{vpc} (no environment)"),
            (None, _) => format!("{vpc} (not in the inventory: an outside party)"),
        };
        let cross = a.is_none() || b.is_none() || env(a) != env(b);
        out.push(Finding::new(
            rules::UNDECLARED_PEERING,
            Some(ControlId::Net1),
            if cross {
                Severity::High
            } else {
                Severity::Medium
            },
            p.id.as_str(),
            format!(
                "peering {} between {} and {} is not declared in network.peerings or a provider",
                p.id,
                side(&p.requester.vpc, a),
                side(&p.accepter.vpc, b)
            ),
        ));
    }
    let mut transit: BTreeSet<String> = BTreeSet::new();
    for rt in &m.inv.route_tables {
        for r in &rt.routes {
            if let RouteTarget::Transit(t) = &r.target {
                transit.insert(format!("{}|{t}", rt.id));
            }
        }
    }
    for key in transit {
        let (rt, tgw) = key.split_once('|').unwrap_or((&key, ""));
        out.push(Finding::new(
            rules::NOT_MODELLED,
            Some(ControlId::Net2),
            Severity::Warning,
            rt,
            format!("route table {rt} routes through transit gateway {tgw}; flows through transit gateways are not analyzed"),
        ));
    }
    out
}

/// NET-2: every flow between two VPCs of different environments, one finding per
/// destination and direction, with the path of one source.
pub(super) fn cross_environment(
    m: &Model<'_>,
    matrix: &mut crate::matrix::Matrix,
    evaluations: &mut usize,
) -> Vec<Finding> {
    let mut pairs: BTreeSet<(usize, usize)> = BTreeSet::new();
    for (a, b) in m
        .peering_vpcs
        .iter()
        .enumerate()
        .filter_map(|(i, ab)| m.inv.peerings.get(i).filter(|p| p.active).map(|_| *ab))
    {
        if let (Some(a), Some(b)) = (a, b) {
            let (ea, eb) = (
                m.vpc_env.get(a).and_then(Option::as_ref),
                m.vpc_env.get(b).and_then(Option::as_ref),
            );
            if let (Some(ea), Some(eb)) = (ea, eb)
                && ea != eb
            {
                pairs.insert((a, b));
                pairs.insert((b, a));
            }
        }
    }
    let all = TrafficSet::all();
    let mut out = Vec::new();
    for (sv, dv) in pairs {
        let (Some(Some(se)), Some(Some(de))) = (m.vpc_env.get(sv), m.vpc_env.get(dv)) else {
            continue;
        };
        let sources = m.vpc_endpoints.get(sv).map_or(&[][..], Vec::as_slice);
        for &d in m.vpc_endpoints.get(dv).into_iter().flatten() {
            let mut witness: Option<usize> = None;
            let mut count = 0;
            let mut traffic = TrafficSet::none();
            let mut open_subnets: std::collections::HashMap<Option<usize>, bool> =
                std::collections::HashMap::new();
            for &s in sources {
                let subnet = m.ep_subnet.get(s).copied().flatten();
                if !*open_subnets
                    .entry(subnet)
                    .or_insert_with(|| m.subnet_can_reach(s, d, &all))
                {
                    continue;
                }
                *evaluations += 1;
                if let Some(flow) = m
                    .evaluate(&Party::Endpoint(s), &Party::Endpoint(d), &all, false)
                    .flow()
                {
                    count += 1;
                    traffic = traffic.union(&flow.traffic);
                    witness.get_or_insert(s);
                }
            }
            let Some(w) = witness else { continue };
            matrix.record(se.as_str(), de.as_str(), true, count, &traffic);
            let path = m.evaluate(&Party::Endpoint(w), &Party::Endpoint(d), &traffic, true);
            let others = if count > 1 {
                format!(" and {} other {se} endpoints", count - 1)
            } else {
                String::new()
            };
            out.push(
                Finding::new(
                    rules::CROSS_ENVIRONMENT_FLOW,
                    Some(ControlId::Net2),
                    Severity::High,
                    m.inv
                        .endpoints
                        .get(d)
                        .map(|e| e.id.to_string())
                        .unwrap_or_default(),
                    format!(
                        "{de} {} can be reached from {se} {}{others}: {traffic}",
                        m.endpoint_label(d),
                        m.endpoint_label(w)
                    ),
                )
                .with_path(path.flow().map(|f| f.path.clone()).unwrap_or_default()),
            );
        }
    }
    out
}
