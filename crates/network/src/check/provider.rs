//! EXT-2: the peering with the database provider is one-way. The provider must not open
//! connections to any of our endpoints (replies to our own connections are stateful and
//! need no rule), and each environment peered with it must reach its database ports.

use std::collections::BTreeMap;

use rampart_core::ControlId;

use crate::addr::AddrSet;
use crate::engine::{Model, Party};
use crate::finding::{Finding, Severity, rules};
use crate::matrix::{Matrix, provider_party};
use crate::traffic::TrafficSet;

/// Runs EXT-2 for every configured provider.
pub(super) fn provider(
    m: &Model<'_>,
    matrix: &mut Matrix,
    evaluations: &mut usize,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (pi, p) in m.cfg.providers.iter().enumerate() {
        let party_name = provider_party(&p.name);
        let addrs = AddrSet::of(p.cidrs.iter().copied());
        let provider = Party::Provider(pi, addrs);
        let mut our_vpcs: Vec<usize> = Vec::new();
        for id in &p.peerings {
            match m.peering_index.get(id) {
                None => out.push(Finding::new(
                    rules::PROVIDER_PEERING_MISSING,
                    Some(ControlId::Ext2),
                    Severity::Medium,
                    id.as_str(),
                    format!(
                        "peering {id} declared for provider {} is not in the inventory",
                        p.name
                    ),
                )),
                Some(i) => {
                    if let Some((a, b)) = m.peering_vpcs.get(*i) {
                        our_vpcs.extend(a.iter().chain(b.iter()));
                    }
                }
            }
        }
        our_vpcs.sort_unstable();
        our_vpcs.dedup();
        if p.peerings.is_empty() {
            out.push(Finding::new(
                rules::PROVIDER_PEERING_MISSING,
                Some(ControlId::Ext2),
                Severity::Medium,
                p.name.as_str(),
                format!(
                    "provider {} declares no peering; nothing proves the one-way link",
                    p.name
                ),
            ));
        }
        let db = TrafficSet::tcp_ports(&p.ports);
        // Per environment: how many of our endpoints reach the provider's database ports.
        let mut reach: BTreeMap<String, (usize, TrafficSet)> = BTreeMap::new();
        for &v in &our_vpcs {
            let env = m
                .vpc_env
                .get(v)
                .and_then(Option::as_ref)
                .map_or_else(|| "no environment".to_owned(), ToString::to_string);
            let entry = reach.entry(env.clone()).or_insert((0, TrafficSet::none()));
            for &e in m.vpc_endpoints.get(v).into_iter().flatten() {
                *evaluations += 2;
                if let Some(flow) = m
                    .evaluate(&Party::Endpoint(e), &provider, &db, false)
                    .flow()
                {
                    entry.0 += 1;
                    entry.1 = entry.1.union(&flow.traffic);
                }
                let Some(flow) = m
                    .evaluate(&provider, &Party::Endpoint(e), &TrafficSet::all(), false)
                    .flow()
                    .cloned()
                else {
                    continue;
                };
                matrix.record(&party_name, &env, true, 1, &flow.traffic);
                let traced = m.evaluate(&provider, &Party::Endpoint(e), &flow.traffic, true);
                out.push(
                    Finding::new(
                        rules::PROVIDER_CAN_REACH_US,
                        Some(ControlId::Ext2),
                        Severity::High,
                        m.inv
                            .endpoints
                            .get(e)
                            .map(|x| x.id.to_string())
                            .unwrap_or_default(),
                        format!(
                            "provider {} ({}) can open connections to {} {}: {}",
                            p.name,
                            flow.addresses
                                .as_ref()
                                .map_or_else(String::new, ToString::to_string),
                            env,
                            m.endpoint_label(e),
                            flow.traffic
                        ),
                    )
                    .with_path(traced.flow().map(|f| f.path.clone()).unwrap_or_default()),
                );
            }
        }
        for (env, (count, traffic)) in reach {
            if count > 0 {
                matrix.record(&env, &party_name, false, count, &traffic);
            } else {
                out.push(Finding::new(
                    rules::NO_FLOW_TO_PROVIDER,
                    Some(ControlId::Ext2),
                    Severity::Medium,
                    p.name.as_str(),
                    format!("no endpoint of {env} reaches provider {} on {db}, although a peering exists", p.name),
                ));
            }
        }
    }
    out
}
