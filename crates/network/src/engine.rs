//! The reachability engine.
//!
//! [`Model`] resolves an [`Inventory`]'s references once into indices (reporting the
//! dangling ones as warnings, never panicking), assigns environments, sorts routes for
//! longest-prefix match and ACL entries by rule number. [`Model::evaluate`] then answers
//! "which traffic can go from X to Y, and why" with the path of hops and the rules that
//! admitted it, like Reachability Analyzer.
//!
//! A flow between two endpoints needs, in order: a route in the source subnet (local, or a
//! peering to the destination VPC), the source subnet's ACL outbound (and inbound for the
//! reply, ACLs being stateless), the source's security groups outbound, the destination
//! subnet's ACL inbound (and outbound for the reply), the destination's security groups
//! inbound, a return route, and a listening port. An address range on one side (the
//! internet, a provider) is split into atoms no rule boundary cuts, and one address stands
//! for each atom, so ranges cost as much as their rules, not their size.

mod eval;
mod flow;

use std::collections::HashMap;

use rampart_core::{ControlId, Environment};

use crate::addr::{AddrSet, Cidr};
use crate::config::NetworkConfig;
use crate::finding::{Finding, Severity, rules};
use crate::ident::{GatewayId, GroupId, PeeringId};
use crate::inventory::{Inventory, NaclEntry, Route, RouteTarget, RulePeer};
use crate::traffic::TrafficSet;

pub use flow::{Flow, Party, UnknownParty, Verdict};

/// An inventory with its references resolved, ready for [`Model::evaluate`].
#[derive(Debug)]
pub struct Model<'a> {
    pub(crate) inv: &'a Inventory,
    pub(crate) cfg: &'a NetworkConfig,
    /// Environment of each VPC.
    pub(crate) vpc_env: Vec<Option<Environment>>,
    pub(crate) subnet_vpc: Vec<Option<usize>>,
    pub(crate) subnet_rt: Vec<Option<usize>>,
    pub(crate) subnet_nacl: Vec<Option<usize>>,
    /// Endpoint → subnet; endpoints without a known subnet take no part in flows.
    pub(crate) ep_subnet: Vec<Option<usize>>,
    pub(crate) ep_vpc: Vec<Option<usize>>,
    pub(crate) ep_groups: Vec<Vec<usize>>,
    pub(crate) ep_addr: Vec<AddrSet>,
    pub(crate) ep_gateway: Vec<bool>,
    pub(crate) vpc_endpoints: Vec<Vec<usize>>,
    /// Each peering's two VPCs, where they are in the inventory.
    pub(crate) peering_vpcs: Vec<(Option<usize>, Option<usize>)>,
    pub(crate) vpc_peerings: Vec<Vec<usize>>,
    pub(crate) igw_vpcs: HashMap<&'a GatewayId, Vec<usize>>,
    /// Routes per table, most specific first, with the implicit local routes added.
    pub(crate) rt_routes: Vec<Vec<Route>>,
    /// ACL entries per ACL and direction (`[inbound, outbound]`), by rule number.
    pub(crate) nacl_entries: Vec<[Vec<&'a NaclEntry>; 2]>,
    /// Compiled rules per group and direction (`[inbound, outbound]`).
    pub(crate) group_rules: Vec<[Vec<CompiledRule>; 2]>,
    pub(crate) endpoint_index: HashMap<&'a str, Vec<usize>>,
    pub(crate) peering_index: HashMap<&'a PeeringId, usize>,
    pub(crate) vpc_index: HashMap<&'a str, usize>,
    /// Per service flow: which endpoints are its sources, its destinations, and its ports.
    pub(crate) service_flows: Vec<(Vec<bool>, Vec<bool>, TrafficSet)>,
    /// Which endpoints the internet allow-list names as the front door.
    pub(crate) front_door: Vec<bool>,
    /// Warnings found while resolving.
    pub(crate) warnings: Vec<Finding>,
}

/// A security group rule with its peer resolved.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub(crate) peer: CompiledPeer,
    pub(crate) traffic: TrafficSet,
    /// How the rule reads in an explanation.
    pub(crate) label: String,
}

/// The remote side of a compiled rule.
#[derive(Debug, Clone)]
pub(crate) enum CompiledPeer {
    Addrs(Vec<Cidr>),
    Group(usize),
    /// A prefix list or group that is not in the inventory: matches nothing.
    Nothing,
}

impl<'a> Model<'a> {
    /// Resolves an inventory. Dangling references become warnings (see
    /// [`Model::warnings`]); nothing here can fail.
    pub fn new(inv: &'a Inventory, cfg: &'a NetworkConfig) -> Self {
        let mut warnings = Vec::new();
        let vpc_index: HashMap<&str, usize> = inv
            .vpcs
            .iter()
            .enumerate()
            .map(|(i, v)| (v.id.as_str(), i))
            .collect();
        let subnet_index: HashMap<&str, usize> = inv
            .subnets
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let group_index: HashMap<&GroupId, usize> = inv
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (&g.id, i))
            .collect();
        let peering_index: HashMap<&PeeringId, usize> = inv
            .peerings
            .iter()
            .enumerate()
            .map(|(i, p)| (&p.id, i))
            .collect();

        let subnet_vpc: Vec<Option<usize>> = inv
            .subnets
            .iter()
            .map(|s| {
                let v = vpc_index.get(s.vpc.as_str()).copied();
                if v.is_none() {
                    dangle(
                        &mut warnings,
                        s.id.as_str(),
                        format!("subnet names VPC {} which is not in the inventory", s.vpc),
                    );
                }
                v
            })
            .collect();

        let mut subnet_rt = vec![None; inv.subnets.len()];
        let mut main_rt: HashMap<usize, usize> = HashMap::new();
        for (i, rt) in inv.route_tables.iter().enumerate() {
            if let Some(v) = vpc_index.get(rt.vpc.as_str())
                && rt.main
            {
                main_rt.insert(*v, i);
            }
            for s in &rt.subnets {
                match subnet_index
                    .get(s.as_str())
                    .and_then(|s| subnet_rt.get_mut(*s))
                {
                    Some(slot) => *slot = Some(i),
                    None => dangle(
                        &mut warnings,
                        rt.id.as_str(),
                        format!(
                            "route table is associated with subnet {s} which is not in the inventory"
                        ),
                    ),
                }
            }
        }
        let mut subnet_nacl = vec![None; inv.subnets.len()];
        let mut default_nacl: HashMap<usize, usize> = HashMap::new();
        for (i, n) in inv.nacls.iter().enumerate() {
            if let Some(v) = vpc_index.get(n.vpc.as_str())
                && n.default
            {
                default_nacl.insert(*v, i);
            }
            for s in &n.subnets {
                match subnet_index
                    .get(s.as_str())
                    .and_then(|s| subnet_nacl.get_mut(*s))
                {
                    Some(slot) => *slot = Some(i),
                    None => dangle(
                        &mut warnings,
                        n.id.as_str(),
                        format!(
                            "network ACL is associated with subnet {s} which is not in the inventory"
                        ),
                    ),
                }
            }
        }
        for (s, v) in subnet_vpc.iter().enumerate() {
            if let Some(v) = v {
                if let Some(slot @ None) = subnet_rt.get_mut(s) {
                    *slot = main_rt.get(v).copied();
                }
                if let Some(slot @ None) = subnet_nacl.get_mut(s) {
                    *slot = default_nacl.get(v).copied();
                }
            }
        }

        let gw = &cfg.gateway;
        let gateway_groups: Vec<usize> = gw
            .security_groups
            .iter()
            .filter_map(|g| group_index.get(g).copied())
            .collect();
        let mut ep_subnet = Vec::with_capacity(inv.endpoints.len());
        let mut ep_vpc = Vec::with_capacity(inv.endpoints.len());
        let mut ep_groups = Vec::with_capacity(inv.endpoints.len());
        let mut ep_addr = Vec::with_capacity(inv.endpoints.len());
        let mut ep_gateway = Vec::with_capacity(inv.endpoints.len());
        let mut vpc_endpoints = vec![Vec::new(); inv.vpcs.len()];
        let mut endpoint_index: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, ep) in inv.endpoints.iter().enumerate() {
            let subnet = subnet_index.get(ep.subnet.as_str()).copied();
            if subnet.is_none() {
                dangle(
                    &mut warnings,
                    ep.id.as_str(),
                    format!(
                        "endpoint is in subnet {} which is not in the inventory; it is left out of the flows",
                        ep.subnet
                    ),
                );
            }
            let vpc = subnet.and_then(|s| subnet_vpc.get(s).copied().flatten());
            let mut groups = Vec::with_capacity(ep.groups.len());
            for g in &ep.groups {
                match group_index.get(g) {
                    Some(gi) => groups.push(*gi),
                    None => dangle(
                        &mut warnings,
                        ep.id.as_str(),
                        format!("endpoint uses security group {g} which is not in the inventory"),
                    ),
                }
            }
            let addr = match (ep.address, subnet.and_then(|s| inv.subnets.get(s))) {
                (Some(a), _) => AddrSet::single(a),
                // A database without a listed address may hold any address of its subnet.
                (None, Some(s)) => AddrSet::of(s.cidrs.iter().copied()),
                (None, None) => AddrSet::empty(),
            };
            let is_gateway = groups.iter().any(|g| gateway_groups.contains(g))
                || gw.addresses.iter().any(|c| {
                    ep.address.is_some_and(|a| c.contains(a))
                        || ep.public_address.is_some_and(|a| c.contains(a))
                });
            if let Some(list) = vpc.and_then(|v| vpc_endpoints.get_mut(v)) {
                list.push(i);
            }
            endpoint_index.entry(ep.id.as_str()).or_default().push(i);
            if let Some(inst) = &ep.instance {
                endpoint_index.entry(inst.as_str()).or_default().push(i);
            }
            ep_subnet.push(if vpc.is_some() { subnet } else { None });
            ep_vpc.push(vpc);
            ep_groups.push(groups);
            ep_addr.push(addr);
            ep_gateway.push(is_gateway);
        }

        let mut vpc_peerings = vec![Vec::new(); inv.vpcs.len()];
        let peering_vpcs: Vec<(Option<usize>, Option<usize>)> = inv
            .peerings
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let a = vpc_index.get(p.requester.vpc.as_str()).copied();
                let b = vpc_index.get(p.accepter.vpc.as_str()).copied();
                if p.active {
                    for v in [a, b].into_iter().flatten() {
                        if let Some(list) = vpc_peerings.get_mut(v) {
                            list.push(i);
                        }
                    }
                }
                (a, b)
            })
            .collect();

        let mut igw_vpcs: HashMap<&GatewayId, Vec<usize>> = HashMap::new();
        for g in &inv.internet_gateways {
            let vpcs = g
                .vpcs
                .iter()
                .filter_map(|v| vpc_index.get(v.as_str()).copied())
                .collect();
            igw_vpcs.insert(&g.id, vpcs);
        }

        let rt_routes = inv
            .route_tables
            .iter()
            .map(|rt| {
                let mut routes = rt.routes.clone();
                // The local route exists even when an export omits it.
                if let Some(v) = vpc_index
                    .get(rt.vpc.as_str())
                    .and_then(|v| inv.vpcs.get(*v))
                {
                    for c in &v.cidrs {
                        if !routes.iter().any(|r| r.destination == *c) {
                            routes.push(Route {
                                destination: *c,
                                target: RouteTarget::Local,
                            });
                        }
                    }
                }
                routes.sort_by_key(|r| std::cmp::Reverse(r.destination.prefix_len()));
                routes
            })
            .collect();

        let nacl_entries = inv
            .nacls
            .iter()
            .map(|n| {
                let mut inbound: Vec<&NaclEntry> = n.entries.iter().filter(|e| !e.egress).collect();
                let mut outbound: Vec<&NaclEntry> = n.entries.iter().filter(|e| e.egress).collect();
                inbound.sort_by_key(|e| e.number);
                outbound.sort_by_key(|e| e.number);
                [inbound, outbound]
            })
            .collect();

        let mut group_rules = Vec::with_capacity(inv.groups.len());
        for g in &inv.groups {
            let mut compile = |rules: &[crate::inventory::GroupRule],
                               dir: &str|
             -> Vec<CompiledRule> {
                rules
                    .iter()
                    .map(|r| {
                        let (peer, what) = match &r.peer {
                            RulePeer::Cidr(c) => (CompiledPeer::Addrs(vec![*c]), c.to_string()),
                            RulePeer::Group(id) => match group_index.get(id) {
                                Some(i) => (CompiledPeer::Group(*i), format!("group {id}")),
                                None => {
                                    dangle(&mut warnings, g.id.as_str(), format!("{dir} rule references security group {id} which is not in the inventory; it matches nothing"));
                                    (CompiledPeer::Nothing, format!("group {id} (unknown)"))
                                }
                            },
                            RulePeer::PrefixList(pl) => match cfg.prefix_lists.get(pl) {
                                Some(cidrs) => (CompiledPeer::Addrs(cidrs.clone()), format!("prefix list {pl}")),
                                None => {
                                    warnings.push(Finding::new(
                                        rules::UNRESOLVED_PREFIX_LIST,
                                        Some(ControlId::Net3),
                                        Severity::Warning,
                                        g.id.as_str(),
                                        format!("{dir} rule references prefix list {pl}, whose addresses are not in the configuration (network.prefix_lists); it matches nothing"),
                                    ));
                                    (CompiledPeer::Nothing, format!("prefix list {pl} (unknown)"))
                                }
                            },
                        };
                        let arrow = if dir == "inbound" { "from" } else { "to" };
                        CompiledRule {
                            peer,
                            traffic: r.traffic.clone(),
                            label: format!("{dir} {} {arrow} {what}", r.traffic),
                        }
                    })
                    .collect()
            };
            let inbound = compile(&g.ingress, "inbound");
            let outbound = compile(&g.egress, "outbound");
            group_rules.push([inbound, outbound]);
        }

        let vpc_env = inv.vpcs.iter().map(|v| environment_of(v, cfg)).collect();
        let service_flows = cfg
            .service_flows
            .iter()
            .map(|f| {
                (
                    designated(inv, &f.from),
                    designated(inv, &f.to),
                    TrafficSet::tcp_ports(&f.ports),
                )
            })
            .collect();
        let front_door = designated(inv, &cfg.internet.front_door);
        Self {
            service_flows,
            front_door,
            inv,
            cfg,
            vpc_env,
            subnet_vpc,
            subnet_rt,
            subnet_nacl,
            ep_subnet,
            ep_vpc,
            ep_groups,
            ep_addr,
            ep_gateway,
            vpc_endpoints,
            peering_vpcs,
            vpc_peerings,
            igw_vpcs,
            rt_routes,
            nacl_entries,
            group_rules,
            endpoint_index,
            peering_index,
            vpc_index,
            warnings,
        }
    }

    /// Doubts about the inventory found while resolving it.
    pub fn warnings(&self) -> &[Finding] {
        &self.warnings
    }

    /// The environment of a VPC by id, if it has one.
    pub fn environment_of_vpc(&self, vpc: &str) -> Option<&Environment> {
        self.vpc_index
            .get(vpc)
            .and_then(|i| self.vpc_env.get(*i))
            .and_then(Option::as_ref)
    }

    /// A human name for an endpoint: `eni-1 (web-1, i-9, 10.0.1.5)`.
    pub(crate) fn endpoint_label(&self, ep: usize) -> String {
        let Some(e) = self.inv.endpoints.get(ep) else {
            return format!("endpoint #{ep}");
        };
        let mut extra: Vec<String> = Vec::new();
        extra.extend(e.name.clone());
        extra.extend(e.instance.as_ref().map(ToString::to_string));
        extra.extend(e.address.map(|a| a.to_string()));
        if extra.is_empty() {
            e.id.to_string()
        } else {
            format!("{} ({})", e.id, extra.join(", "))
        }
    }

    /// The environment of an endpoint's VPC.
    pub(crate) fn endpoint_env(&self, ep: usize) -> Option<&Environment> {
        self.ep_vpc
            .get(ep)
            .copied()
            .flatten()
            .and_then(|v| self.vpc_env.get(v))
            .and_then(Option::as_ref)
    }
}

/// Which endpoints a list of names from the configuration designates: ids, instance ids,
/// `Name` tags, security group ids, or CIDRs holding a private or public address. Names are
/// hashed once, so long lists cost one pass over the endpoints.
fn designated(inv: &Inventory, names: &[String]) -> Vec<bool> {
    let set: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let cidrs: Vec<Cidr> = names.iter().filter_map(|n| Cidr::parse(n).ok()).collect();
    inv.endpoints
        .iter()
        .map(|ep| {
            set.contains(ep.id.as_str())
                || ep
                    .instance
                    .as_ref()
                    .is_some_and(|i| set.contains(i.as_str()))
                || ep.name.as_deref().is_some_and(|n| set.contains(n))
                || ep.groups.iter().any(|g| set.contains(g.as_str()))
                || cidrs.iter().any(|c| {
                    ep.public_address.is_some_and(|a| c.contains(a))
                        || ep.address.is_some_and(|a| c.contains(a))
                })
        })
        .collect()
}

fn dangle(warnings: &mut Vec<Finding>, resource: &str, message: String) {
    warnings.push(Finding::new(
        rules::DANGLING_REFERENCE,
        None,
        Severity::Warning,
        resource,
        message,
    ));
}

/// Config mapping by VPC id, then by CIDR, then the importer's own declaration, then the tag.
pub(crate) fn environment_of(
    v: &crate::inventory::Vpc,
    cfg: &NetworkConfig,
) -> Option<Environment> {
    for (env, keys) in &cfg.environments {
        if keys.iter().any(|k| k == v.id.as_str()) {
            return Some(env.clone());
        }
    }
    for (env, keys) in &cfg.environments {
        let by_cidr = keys
            .iter()
            .filter_map(|k| Cidr::parse(k).ok())
            .any(|c| v.cidrs.first().is_some_and(|own| c.covers(*own)));
        if by_cidr {
            return Some(env.clone());
        }
    }
    v.environment
        .as_deref()
        .or_else(|| v.tags.value(&cfg.environment_tag))
        .and_then(|t| Environment::parse(t).ok())
}
