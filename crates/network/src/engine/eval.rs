//! One side of a flow: what an endpoint's route table, network ACL and security groups do
//! to traffic towards (or from) a remote address range.

use std::net::IpAddr;

use super::{CompiledPeer, Model};
use crate::addr::{AddrSet, Cidr};
use crate::finding::Hop;
use crate::inventory::RouteTarget;
use crate::traffic::TrafficSet;

/// Which way traffic crosses the endpoint's filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Into the endpoint.
    Inbound,
    /// Out of the endpoint.
    Outbound,
}

impl Direction {
    fn slot(self) -> usize {
        match self {
            Self::Inbound => 0,
            Self::Outbound => 1,
        }
    }

    fn reverse(self) -> Self {
        match self {
            Self::Inbound => Self::Outbound,
            Self::Outbound => Self::Inbound,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// What the route towards the remote side must be.
#[derive(Debug, Clone)]
pub(crate) enum RouteNeed<'n> {
    /// Inside the VPC.
    Local,
    /// Through one of these peerings.
    Peering(&'n [usize]),
    /// Through an internet gateway attached to the endpoint's VPC.
    Internet,
}

/// The remote side as this side's filters see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Remote<'r> {
    pub(crate) addrs: &'r AddrSet,
    pub(crate) groups: &'r [usize],
}

/// The result of one side, per atom of the remote range.
#[derive(Debug, Default)]
pub(crate) struct SideResult {
    /// Admitted traffic, union over atoms.
    pub(crate) traffic: TrafficSet,
    /// Per atom: its addresses, what it admits, and (when tracing) its hops.
    pub(crate) atoms: Vec<(AddrSet, TrafficSet, Vec<Hop>)>,
}

impl SideResult {
    /// The hops of the first atom whose traffic meets `wanted`, else of the first atom.
    pub(crate) fn witness(&self, wanted: &TrafficSet) -> Vec<Hop> {
        self.atoms
            .iter()
            .find(|(_, t, _)| t.intersects(wanted))
            .or(self.atoms.first())
            .map(|(_, _, h)| h.clone())
            .unwrap_or_default()
    }

    /// The remote addresses that got some of `wanted` through.
    pub(crate) fn admitted_addrs(&self, wanted: &TrafficSet) -> AddrSet {
        self.atoms
            .iter()
            .filter(|(_, t, _)| t.intersects(wanted))
            .fold(AddrSet::empty(), |acc, (a, _, _)| acc.union(a))
    }
}

impl Model<'_> {
    /// Evaluates one side. `skip_acl` is set when both ends share a subnet (ACLs filter only
    /// traffic that crosses a subnet boundary).
    #[allow(clippy::too_many_arguments)] // One call site per flow shape; a struct would only rename them.
    pub(crate) fn side(
        &self,
        ep: usize,
        dir: Direction,
        remote: Remote<'_>,
        need: &RouteNeed<'_>,
        skip_acl: bool,
        network_only: bool,
        wanted: &TrafficSet,
        trace: bool,
    ) -> SideResult {
        let subnet = self.ep_subnet.get(ep).copied().flatten();
        let rt = subnet.and_then(|s| self.subnet_rt.get(s).copied().flatten());
        let nacl = subnet.and_then(|s| self.subnet_nacl.get(s).copied().flatten());
        // Network-only screening skips security groups: it asks whether routes and ACLs
        // let anything through at all.
        let groups: Option<&[usize]> =
            (!network_only).then(|| self.ep_groups.get(ep).map_or(&[][..], Vec::as_slice));
        let mut out = SideResult::default();
        if remote.addrs.only().is_some() {
            // One address, one atom: the common case between endpoints, kept allocation-free.
            let Some(rep) = remote.addrs.first() else {
                return out;
            };
            let mut hops = Vec::new();
            out.traffic = self.atom(
                ep,
                dir,
                rep,
                remote.groups,
                rt,
                nacl,
                groups,
                need,
                skip_acl,
                wanted,
                trace.then_some(&mut hops),
            );
            if trace {
                out.atoms
                    .push((remote.addrs.clone(), out.traffic.clone(), hops));
            }
            return out;
        }
        for atom in remote
            .addrs
            .atoms(self.boundaries(rt, nacl, groups.unwrap_or(&[]), dir).iter())
        {
            let Some(rep) = atom.first() else { continue };
            let mut hops = Vec::new();
            let traffic = self.atom(
                ep,
                dir,
                rep,
                remote.groups,
                rt,
                nacl,
                groups,
                need,
                skip_acl,
                wanted,
                trace.then_some(&mut hops),
            );
            out.traffic = out.traffic.union(&traffic);
            out.atoms.push((atom, traffic, hops));
        }
        out
    }

    #[allow(clippy::too_many_arguments)] // The parts of one side, resolved once by `side`.
    fn atom(
        &self,
        ep: usize,
        dir: Direction,
        rep: IpAddr,
        remote_groups: &[usize],
        rt: Option<usize>,
        nacl: Option<usize>,
        groups: Option<&[usize]>,
        need: &RouteNeed<'_>,
        skip_acl: bool,
        wanted: &TrafficSet,
        mut trace: Option<&mut Vec<Hop>>,
    ) -> TrafficSet {
        // A macro, not a closure: the hop text is only built when tracing.
        macro_rules! hop {
            ($h:expr) => {
                if let Some(t) = trace.as_deref_mut() {
                    t.push($h);
                }
            };
        }
        let route_word = if dir == Direction::Outbound {
            "route"
        } else {
            "return route"
        };
        // 1. Route towards the remote address.
        let Some(rt) = rt else {
            // Without a route table only the implicit local route is known.
            if matches!(need, RouteNeed::Local) {
                hop!(Hop::new(
                    self.subnet_name(ep),
                    "no route table in the inventory: local route assumed"
                ));
            } else {
                hop!(Hop::new(
                    self.subnet_name(ep),
                    "blocked: the subnet has no route table"
                ));
                return TrafficSet::none();
            }
            return self.filters(
                ep,
                dir,
                rep,
                remote_groups,
                nacl,
                groups,
                skip_acl,
                wanted,
                trace,
            );
        };
        let rt_name = || {
            self.inv
                .route_tables
                .get(rt)
                .map(|r| r.id.to_string())
                .unwrap_or_default()
        };
        let route = self
            .rt_routes
            .get(rt)
            .and_then(|routes| routes.iter().find(|r| r.destination.contains(rep)));
        let ok = match (route.map(|r| &r.target), need) {
            (Some(RouteTarget::Local), RouteNeed::Local) => true,
            (Some(RouteTarget::Peering(p)), RouteNeed::Peering(allowed)) => self
                .peering_index
                .get(p)
                .is_some_and(|i| allowed.contains(i)),
            (Some(RouteTarget::Internet(g)), RouteNeed::Internet) => {
                let vpc = self.ep_vpc.get(ep).copied().flatten();
                self.igw_vpcs
                    .get(g)
                    .is_some_and(|v| vpc.is_some_and(|vpc| v.contains(&vpc)))
            }
            _ => false,
        };
        match route {
            Some(r) if ok => hop!(Hop::new(
                rt_name(),
                format!(
                    "{route_word} {} via {} matches {rep}",
                    r.destination,
                    target_name(&r.target)
                )
            )),
            Some(r) => {
                hop!(Hop::new(
                    rt_name(),
                    format!(
                        "blocked: {route_word} for {rep} is {} via {}, not {}",
                        r.destination,
                        target_name(&r.target),
                        need_name(need)
                    )
                ));
                return TrafficSet::none();
            }
            None => {
                hop!(Hop::new(
                    rt_name(),
                    format!("blocked: no {route_word} for {rep}")
                ));
                return TrafficSet::none();
            }
        }
        self.filters(
            ep,
            dir,
            rep,
            remote_groups,
            nacl,
            groups,
            skip_acl,
            wanted,
            trace,
        )
    }

    /// Steps 2 and 3 of an atom: network ACL both ways, then security groups.
    #[allow(clippy::too_many_arguments)] // The rest of `atom`, split so a missing route table can skip to it.
    fn filters(
        &self,
        ep: usize,
        dir: Direction,
        rep: IpAddr,
        remote_groups: &[usize],
        nacl: Option<usize>,
        groups: Option<&[usize]>,
        skip_acl: bool,
        wanted: &TrafficSet,
        mut trace: Option<&mut Vec<Hop>>,
    ) -> TrafficSet {
        macro_rules! hop {
            ($h:expr) => {
                if let Some(t) = trace.as_deref_mut() {
                    t.push($h);
                }
            };
        }
        // 2. Network ACL, both ways: the reply to ephemeral ports must pass too.
        let mut traffic = wanted.clone();
        if !skip_acl && nacl.is_none() {
            // Every subnet has an ACL; one missing from the inventory is AWS's default, which
            // allows everything. Assuming it over-approximates, which is the safe side.
            hop!(Hop::new(
                self.subnet_name(ep),
                "no network ACL in the inventory: assumed AWS's default ACL (allows all)"
            ));
        }
        if let (false, Some(nacl)) = (skip_acl, nacl) {
            let name = || {
                self.inv
                    .nacls
                    .get(nacl)
                    .map(|n| n.id.to_string())
                    .unwrap_or_default()
            };
            let (admitted, why) = self.acl(nacl, dir, rep, &traffic, trace.is_some());
            hop!(Hop::new(name(), why));
            traffic = admitted;
            if traffic.is_empty() {
                return traffic;
            }
            if traffic.has_tcp() || traffic.has_udp() {
                let reply = TrafficSet::tcp_udp(self.cfg.ephemeral());
                let (back, why) = self.acl(nacl, dir.reverse(), rep, &reply, trace.is_some());
                traffic = traffic.keep_transport(back.has_tcp(), back.has_udp());
                hop!(Hop::new(name(), format!("reply: {why}")));
                if traffic.is_empty() {
                    return traffic;
                }
            }
        }
        // 3. Security groups (stateful: the reply needs no rule).
        let Some(groups) = groups else {
            return traffic;
        };
        let mut admitted = TrafficSet::none();
        let mut labels = Vec::new();
        for g in groups {
            for rule in self
                .group_rules
                .get(*g)
                .and_then(|r| r.get(dir.slot()))
                .into_iter()
                .flatten()
            {
                let matches = match &rule.peer {
                    CompiledPeer::Addrs(cidrs) => cidrs.iter().any(|c| c.contains(rep)),
                    CompiledPeer::Group(peer) => remote_groups.contains(peer),
                    CompiledPeer::Nothing => false,
                };
                if matches && rule.traffic.intersects(&traffic) {
                    admitted = admitted.union(&rule.traffic.intersection(&traffic));
                    if trace.is_some() {
                        let gid = self
                            .inv
                            .groups
                            .get(*g)
                            .map(|x| x.id.to_string())
                            .unwrap_or_default();
                        labels.push(format!("{gid} {}", rule.label));
                    }
                }
            }
        }
        if admitted.is_empty() {
            hop!(Hop::new(
                self.groups_name(ep),
                format!("blocked: no {} rule admits {traffic} for {rep}", dir.word())
            ));
        } else {
            hop!(Hop::new(
                self.groups_name(ep),
                format!("allowed by {}", labels.join("; "))
            ));
        }
        admitted
    }

    /// First-match evaluation of an ACL for one remote address; explains what admitted.
    pub(crate) fn acl(
        &self,
        nacl: usize,
        dir: Direction,
        rep: IpAddr,
        wanted: &TrafficSet,
        trace: bool,
    ) -> (TrafficSet, String) {
        let mut remaining = wanted.clone();
        let mut admitted = TrafficSet::none();
        let mut why: Vec<String> = Vec::new();
        for e in self
            .nacl_entries
            .get(nacl)
            .and_then(|d| d.get(dir.slot()))
            .into_iter()
            .flatten()
        {
            if remaining.is_empty() {
                break;
            }
            if !e.cidr.contains(rep) {
                continue;
            }
            let hit = remaining.intersection(&e.traffic);
            if hit.is_empty() {
                continue;
            }
            if trace {
                let verb = if e.allow { "allow" } else { "deny" };
                why.push(format!(
                    "{} rule {} {verb} {hit} {} {}",
                    dir.word(),
                    e.number,
                    if dir == Direction::Inbound {
                        "from"
                    } else {
                        "to"
                    },
                    e.cidr
                ));
            }
            if e.allow {
                admitted = admitted.union(&hit);
            }
            remaining = remaining.difference(&hit);
        }
        if trace && !remaining.is_empty() {
            why.push(format!("{} default deny for the rest", dir.word()));
        }
        let text = match (trace, admitted.is_empty()) {
            (false, _) => String::new(),
            (true, true) => format!("blocked: {}", why.join("; ")),
            (true, false) => why.join("; "),
        };
        (admitted, text)
    }

    /// Every block that can change a decision on this side, so atoms are never cut.
    fn boundaries(
        &self,
        rt: Option<usize>,
        nacl: Option<usize>,
        groups: &[usize],
        dir: Direction,
    ) -> Vec<Cidr> {
        let mut out: Vec<Cidr> = Vec::new();
        if let Some(routes) = rt.and_then(|r| self.rt_routes.get(r)) {
            out.extend(routes.iter().map(|r| r.destination));
        }
        if let Some(both) = nacl.and_then(|n| self.nacl_entries.get(n)) {
            out.extend(both.iter().flatten().map(|e| e.cidr));
        }
        for g in groups {
            for rule in self
                .group_rules
                .get(*g)
                .and_then(|r| r.get(dir.slot()))
                .into_iter()
                .flatten()
            {
                if let CompiledPeer::Addrs(c) = &rule.peer {
                    out.extend(c.iter().copied());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn subnet_name(&self, ep: usize) -> String {
        self.inv
            .endpoints
            .get(ep)
            .map(|e| e.subnet.to_string())
            .unwrap_or_default()
    }

    fn groups_name(&self, ep: usize) -> String {
        let names: Vec<String> = self
            .ep_groups
            .get(ep)
            .into_iter()
            .flatten()
            .filter_map(|g| self.inv.groups.get(*g).map(|x| x.id.to_string()))
            .collect();
        if names.is_empty() {
            "security groups (none)".to_owned()
        } else {
            names.join(", ")
        }
    }
}

fn target_name(t: &RouteTarget) -> String {
    match t {
        RouteTarget::Local => "local".to_owned(),
        RouteTarget::Internet(g) | RouteTarget::Nat(g) | RouteTarget::Transit(g) => g.to_string(),
        RouteTarget::Peering(p) => p.to_string(),
        RouteTarget::Other(o) => o.clone(),
    }
}

fn need_name(n: &RouteNeed<'_>) -> &'static str {
    match n {
        RouteNeed::Local => "local",
        RouteNeed::Peering(_) => "a peering to the other side",
        RouteNeed::Internet => "an internet gateway of this VPC",
    }
}
