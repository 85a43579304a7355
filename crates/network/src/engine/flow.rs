//! Flows between parties: endpoints, the internet, providers.

use serde::Serialize;

use super::Model;
use super::eval::{Direction, Remote, RouteNeed, SideResult};
use crate::addr::AddrSet;
use crate::finding::Hop;
use crate::traffic::TrafficSet;

/// One end of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Party {
    /// An endpoint of the inventory, by index.
    Endpoint(usize),
    /// Addresses on the internet (all of it, or one address).
    Internet(AddrSet),
    /// A declared provider (index into `NetworkConfig::providers`), all or part of its blocks.
    Provider(usize, AddrSet),
}

/// Traffic that can go from one party to another, with the path that admits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// The source, as a human reads it.
    pub from: String,
    /// The destination.
    pub to: String,
    /// The remote addresses that get through, when one side is a range.
    pub addresses: Option<AddrSet>,
    /// What can flow.
    pub traffic: TrafficSet,
    /// The explaining path, source first (empty when not traced).
    pub path: Vec<Hop>,
}

/// The answer to "can X reach Y on P?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    /// Some of the traffic gets through.
    Reachable(Flow),
    /// Nothing gets through; the path ends at the hop that stopped it.
    Blocked {
        /// The source.
        from: String,
        /// The destination.
        to: String,
        /// The hops up to and including the blocking one.
        path: Vec<Hop>,
    },
}

impl Verdict {
    /// The flow, if any traffic gets through.
    pub fn flow(&self) -> Option<&Flow> {
        match self {
            Self::Reachable(f) => Some(f),
            Self::Blocked { .. } => None,
        }
    }
}

impl Model<'_> {
    /// Which part of `wanted` can go from `from` to `to`, explained hop by hop when
    /// `trace` is set (bulk checks leave it off and trace only the witnesses they report).
    /// Untraced, the flow's names and path are left empty.
    pub fn evaluate(&self, from: &Party, to: &Party, wanted: &TrafficSet, trace: bool) -> Verdict {
        // Names cost a format per call; bulk checks name the parties themselves.
        let (from_name, to_name) = if trace {
            (self.party_name(from), self.party_name(to))
        } else {
            (String::new(), String::new())
        };
        let blocked = |path: Vec<Hop>| Verdict::Blocked {
            from: from_name.clone(),
            to: to_name.clone(),
            path,
        };
        match (from, to) {
            (Party::Endpoint(s), Party::Endpoint(d)) => {
                self.between_endpoints(*s, *d, wanted, trace, from_name.clone(), to_name.clone())
            }
            (Party::Internet(addrs) | Party::Provider(_, addrs), Party::Endpoint(d)) => {
                let d = *d;
                let mut path = vec![Hop::new(&from_name, format!("source {addrs}"))];
                let wanted = self.listening(d, wanted);
                let empty: [usize; 0] = [];
                let peerings: Vec<usize>;
                let need = match from {
                    Party::Provider(p, _) => {
                        peerings = self.provider_peerings(*p, d);
                        if peerings.is_empty() {
                            path.push(Hop::new(
                                &to_name,
                                "blocked: no active peering of this provider reaches the VPC",
                            ));
                            return blocked(path);
                        }
                        path.push(Hop::new(
                            self.peering_names(&peerings),
                            "assumed: the provider routes to us (its side is not in the inventory)",
                        ));
                        RouteNeed::Peering(&peerings)
                    }
                    _ => {
                        if !self.inv.endpoints.get(d).is_some_and(|e| e.public) {
                            path.push(Hop::new(&to_name, "blocked: no public address"));
                            return blocked(path);
                        }
                        path.push(Hop::new(
                            "internet gateway",
                            "inbound to the public address",
                        ));
                        RouteNeed::Internet
                    }
                };
                let remote = Remote {
                    addrs,
                    groups: &empty,
                };
                let side = self.side(
                    d,
                    Direction::Inbound,
                    remote,
                    &need,
                    false,
                    false,
                    &wanted,
                    trace,
                );
                self.finish(side, path, None, trace, from_name, to_name)
            }
            (Party::Endpoint(s), Party::Provider(p, addrs)) => {
                let s = *s;
                let peerings = self.provider_peerings(*p, s);
                let mut path = vec![Hop::new(&from_name, "source")];
                if peerings.is_empty() {
                    path.push(Hop::new(
                        &from_name,
                        "blocked: no active peering of this provider reaches the VPC",
                    ));
                    return blocked(path);
                }
                let empty: [usize; 0] = [];
                let remote = Remote {
                    addrs,
                    groups: &empty,
                };
                let side = self.side(
                    s,
                    Direction::Outbound,
                    remote,
                    &RouteNeed::Peering(&peerings),
                    false,
                    false,
                    wanted,
                    trace,
                );
                let tail = Hop::new(
                    &to_name,
                    "assumed: the provider admits the traffic (its firewalls are not in the inventory)",
                );
                self.finish(side, path, Some(tail), trace, from_name, to_name)
            }
            _ => blocked(vec![Hop::new(
                &from_name,
                "not analyzed: flows out to the internet or between external parties are outside the model",
            )]),
        }
    }

    #[allow(clippy::too_many_arguments)] // Internal tail of `evaluate`.
    fn finish(
        &self,
        side: SideResult,
        mut path: Vec<Hop>,
        tail: Option<Hop>,
        trace: bool,
        from: String,
        to: String,
    ) -> Verdict {
        let traffic = side.traffic.clone();
        if trace {
            path.extend(side.witness(&traffic));
        }
        if traffic.is_empty() {
            return Verdict::Blocked { from, to, path };
        }
        path.extend(tail);
        Verdict::Reachable(Flow {
            from,
            to,
            addresses: Some(side.admitted_addrs(&traffic)),
            traffic,
            path: if trace { path } else { Vec::new() },
        })
    }

    fn between_endpoints(
        &self,
        s: usize,
        d: usize,
        wanted: &TrafficSet,
        trace: bool,
        from: String,
        to: String,
    ) -> Verdict {
        let mut path = vec![Hop::new(&from, "source")];
        let (sv, dv) = (
            self.ep_vpc.get(s).copied().flatten(),
            self.ep_vpc.get(d).copied().flatten(),
        );
        let (Some(sv), Some(dv)) = (sv, dv) else {
            path.push(Hop::new(
                &from,
                "blocked: an end has no known subnet or VPC",
            ));
            return Verdict::Blocked { from, to, path };
        };
        let peerings: Vec<usize>;
        let (need, hop) = if sv == dv {
            (RouteNeed::Local, None)
        } else {
            peerings = self
                .vpc_peerings
                .get(sv)
                .into_iter()
                .flatten()
                .copied()
                .filter(|p| self.vpc_peerings.get(dv).is_some_and(|l| l.contains(p)))
                .collect();
            if peerings.is_empty() {
                path.push(Hop::new(
                    &from,
                    "blocked: no active peering between the two VPCs",
                ));
                return Verdict::Blocked { from, to, path };
            }
            let hop = trace.then(|| {
                Hop::new(
                    self.peering_names(&peerings),
                    "peering connection between the two VPCs",
                )
            });
            (RouteNeed::Peering(&peerings), hop)
        };
        let same_subnet = self.ep_subnet.get(s) == self.ep_subnet.get(d);
        let empty = AddrSet::empty();
        let no_groups: Vec<usize> = Vec::new();
        let (d_addr, d_groups) = (
            self.ep_addr.get(d).unwrap_or(&empty),
            self.ep_groups.get(d).unwrap_or(&no_groups),
        );
        let (s_addr, s_groups) = (
            self.ep_addr.get(s).unwrap_or(&empty),
            self.ep_groups.get(s).unwrap_or(&no_groups),
        );
        let wanted = self.listening(d, wanted);
        let out = self.side(
            s,
            Direction::Outbound,
            Remote {
                addrs: d_addr,
                groups: d_groups,
            },
            &need,
            same_subnet,
            false,
            &wanted,
            trace,
        );
        if trace {
            path.extend(out.witness(&out.traffic));
        }
        if out.traffic.is_empty() {
            return Verdict::Blocked { from, to, path };
        }
        path.extend(hop);
        let inn = self.side(
            d,
            Direction::Inbound,
            Remote {
                addrs: s_addr,
                groups: s_groups,
            },
            &need,
            same_subnet,
            false,
            &out.traffic,
            trace,
        );
        if trace {
            path.extend(inn.witness(&inn.traffic));
        }
        if inn.traffic.is_empty() {
            return Verdict::Blocked { from, to, path };
        }
        path.push(Hop::new(&to, "destination"));
        Verdict::Reachable(Flow {
            from,
            to,
            addresses: None,
            traffic: inn.traffic,
            path: if trace { path } else { Vec::new() },
        })
    }

    /// What the destination listens on, within `wanted`.
    fn listening(&self, d: usize, wanted: &TrafficSet) -> TrafficSet {
        match self.inv.endpoints.get(d).and_then(|e| e.listening.as_ref()) {
            Some(l) => wanted.intersection(l),
            None => wanted.clone(),
        }
    }

    /// Active peerings of a provider that touch the endpoint's VPC.
    pub(crate) fn provider_peerings(&self, provider: usize, ep: usize) -> Vec<usize> {
        let vpc = self.ep_vpc.get(ep).copied().flatten();
        let Some(p) = self.cfg.providers.get(provider) else {
            return Vec::new();
        };
        p.peerings
            .iter()
            .filter_map(|id| self.peering_index.get(id).copied())
            .filter(|i| self.inv.peerings.get(*i).is_some_and(|x| x.active))
            .filter(|i| {
                self.peering_vpcs
                    .get(*i)
                    .is_some_and(|(a, b)| vpc.is_some() && (*a == vpc || *b == vpc))
            })
            .collect()
    }

    fn peering_names(&self, list: &[usize]) -> String {
        let names: Vec<String> = list
            .iter()
            .filter_map(|i| self.inv.peerings.get(*i).map(|p| p.id.to_string()))
            .collect();
        names.join(", ")
    }

    /// How a party reads in findings.
    pub(crate) fn party_name(&self, p: &Party) -> String {
        match p {
            Party::Endpoint(e) => self.endpoint_label(*e),
            Party::Internet(a) => {
                if *a == AddrSet::internet() {
                    "internet".to_owned()
                } else {
                    format!("internet ({a})")
                }
            }
            Party::Provider(i, _) => self
                .cfg
                .providers
                .get(*i)
                .map_or_else(|| "provider".to_owned(), |p| format!("provider {}", p.name)),
        }
    }
}

/// A name given to `explain` that matches nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an endpoint id, instance id, name, address, provider name or \"internet\"")]
pub struct UnknownParty(pub String);

impl Model<'_> {
    /// Resolves a name from the command line: `internet`, a provider name, an endpoint,
    /// instance or database id, a `Name` tag, or an address (an endpoint's private or public
    /// address, a provider's address, or an internet address).
    pub fn party(&self, name: &str) -> Result<Party, UnknownParty> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("internet") {
            return Ok(Party::Internet(AddrSet::internet()));
        }
        if let Some(i) = self.cfg.providers.iter().position(|p| p.name == name) {
            let addrs = self
                .cfg
                .providers
                .get(i)
                .map(|p| AddrSet::of(p.cidrs.iter().copied()))
                .unwrap_or_default();
            return Ok(Party::Provider(i, addrs));
        }
        if let Some(e) = self.endpoint_index.get(name).and_then(|v| v.first()) {
            return Ok(Party::Endpoint(*e));
        }
        if let Some(e) = self
            .inv
            .endpoints
            .iter()
            .position(|e| e.name.as_deref() == Some(name))
        {
            return Ok(Party::Endpoint(e));
        }
        let Ok(ip) = name.parse::<std::net::IpAddr>() else {
            return Err(UnknownParty(name.to_owned()));
        };
        if let Some(e) = self
            .inv
            .endpoints
            .iter()
            .position(|e| e.address == Some(ip) || e.public_address == Some(ip))
        {
            return Ok(Party::Endpoint(e));
        }
        if let Some(i) = self
            .cfg
            .providers
            .iter()
            .position(|p| p.cidrs.iter().any(|c| c.contains(ip)))
        {
            return Ok(Party::Provider(i, AddrSet::single(ip)));
        }
        Ok(Party::Internet(AddrSet::single(ip)))
    }
}

impl Model<'_> {
    /// Whether routes and network ACLs (both ways) could let any of `wanted` from some
    /// address of subnet `from_subnet` to endpoint `d`, security groups aside. When this is
    /// false every endpoint of that subnet is blocked, so bulk checks skip them all.
    pub(crate) fn subnet_can_reach(&self, from_ep: usize, d: usize, wanted: &TrafficSet) -> bool {
        let (Some(sv), Some(dv)) = (
            self.ep_vpc.get(from_ep).copied().flatten(),
            self.ep_vpc.get(d).copied().flatten(),
        ) else {
            return false;
        };
        let Some(subnet) = self.ep_subnet.get(from_ep).copied().flatten() else {
            return false;
        };
        let peerings: Vec<usize>;
        let need = if sv == dv {
            RouteNeed::Local
        } else {
            peerings = self
                .vpc_peerings
                .get(sv)
                .into_iter()
                .flatten()
                .copied()
                .filter(|p| self.vpc_peerings.get(dv).is_some_and(|l| l.contains(p)))
                .collect();
            if peerings.is_empty() {
                return false;
            }
            RouteNeed::Peering(&peerings)
        };
        let same_subnet = self.ep_subnet.get(d).copied().flatten() == Some(subnet);
        let empty = AddrSet::empty();
        let d_addr = self.ep_addr.get(d).unwrap_or(&empty);
        let s_addrs = self
            .inv
            .subnets
            .get(subnet)
            .map(|s| AddrSet::of(s.cidrs.iter().copied()))
            .unwrap_or_default();
        let out = self.side(
            from_ep,
            Direction::Outbound,
            Remote {
                addrs: d_addr,
                groups: &[],
            },
            &need,
            same_subnet,
            true,
            wanted,
            false,
        );
        if out.traffic.is_empty() {
            return false;
        }
        let inn = self.side(
            d,
            Direction::Inbound,
            Remote {
                addrs: &s_addrs,
                groups: &[],
            },
            &need,
            same_subnet,
            true,
            &out.traffic,
            false,
        );
        !inn.traffic.is_empty()
    }
}
