//! rampart's own TOML description, for on-premises networks and other clouds.
//!
//! ```toml
//! [[networks]]
//! id = "dc1-prod"
//! environment = "production"
//! cidrs = ["192.168.10.0/24"]
//! internet = true                 # has a route to the internet
//!
//! [[hosts]]
//! id = "db1"
//! network = "dc1-prod"
//! address = "192.168.10.5"
//! public_address = "198.51.100.7" # optional
//! listens = ["tcp/5432"]          # optional; default: anything
//!
//! [[rules]]                        # stateful allow rules; everything else is denied
//! from = ["app1", "10.0.0.0/8", "internet", "dc1-app"]
//! to = ["db1"]                    # hosts or networks
//! ports = ["tcp/5432"]            # "tcp/22", "udp/1000-2000", "icmp", "all"
//!
//! [[links]]                        # a peering, VPN or interconnect
//! id = "vpn-1"
//! between = ["dc1-prod", "dc2-prod"]
//! ```
//!
//! Each network becomes a VPC with one subnet, an allow-all ACL and routes to its links;
//! each host gets its own security group holding the rules that name it, so the engine
//! judges TOML and AWS the same way.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use super::LoadError;
use crate::addr::Cidr;
use crate::ident::{
    EndpointId, GatewayId, GroupId, NaclId, PeeringId, RouteTableId, SubnetId, VpcId,
};
use crate::inventory::{
    Endpoint, EndpointKind, GroupRule, InternetGateway, Inventory, Nacl, NaclEntry, PeerSide,
    Peering, Route, RouteTable, RouteTarget, RulePeer, SecurityGroup, Subnet, Tags, Vpc,
};
use crate::traffic::{PortRange, Protocol, TrafficSet};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Document {
    networks: Vec<Network>,
    hosts: Vec<Host>,
    rules: Vec<Rule>,
    links: Vec<Link>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Network {
    id: VpcId,
    environment: Option<String>,
    cidrs: Vec<Cidr>,
    #[serde(default)]
    internet: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Host {
    id: EndpointId,
    network: VpcId,
    address: IpAddr,
    public_address: Option<IpAddr>,
    listens: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    from: Vec<String>,
    to: Vec<String>,
    ports: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    id: PeeringId,
    between: [VpcId; 2],
}

/// Parses and converts one TOML document.
pub(super) fn import(file: &str, text: &str) -> Result<Inventory, LoadError> {
    let doc: Document = toml::from_str(text).map_err(|e| LoadError::Toml {
        file: file.to_owned(),
        message: e.to_string(),
    })?;
    let invalid = |message: String| LoadError::Invalid {
        file: file.to_owned(),
        message,
    };
    let cidrs_of: BTreeMap<&VpcId, &[Cidr]> = doc
        .networks
        .iter()
        .map(|n| (&n.id, n.cidrs.as_slice()))
        .collect();
    let mut inv = Inventory {
        files: vec![file.to_owned()],
        ..Inventory::default()
    };
    let all = AllowAll;
    for n in &doc.networks {
        let subnet =
            SubnetId::parse(&format!("{}/subnet", n.id)).map_err(|e| invalid(e.to_string()))?;
        let mut routes: Vec<Route> = Vec::new();
        for link in doc.links.iter().filter(|l| l.between.contains(&n.id)) {
            let other = link.between.iter().find(|v| **v != n.id);
            for cidr in other
                .and_then(|o| cidrs_of.get(o))
                .copied()
                .unwrap_or_default()
            {
                routes.push(Route {
                    destination: *cidr,
                    target: RouteTarget::Peering(link.id.clone()),
                });
            }
        }
        if n.internet {
            let igw = GatewayId::parse(&format!("{}/internet", n.id))
                .map_err(|e| invalid(e.to_string()))?;
            for any in ["0.0.0.0/0", "::/0"]
                .iter()
                .filter_map(|c| Cidr::parse(c).ok())
            {
                routes.push(Route {
                    destination: any,
                    target: RouteTarget::Internet(igw.clone()),
                });
            }
            inv.internet_gateways.push(InternetGateway {
                id: igw,
                vpcs: vec![n.id.clone()],
            });
        }
        inv.vpcs.push(Vpc {
            id: n.id.clone(),
            cidrs: n.cidrs.clone(),
            tags: Tags::default(),
            owner: None,
            environment: n.environment.clone(),
        });
        inv.subnets.push(Subnet {
            id: subnet.clone(),
            vpc: n.id.clone(),
            cidrs: n.cidrs.clone(),
            tags: Tags::default(),
        });
        inv.route_tables.push(RouteTable {
            id: RouteTableId::parse(&format!("{}/routes", n.id))
                .map_err(|e| invalid(e.to_string()))?,
            vpc: n.id.clone(),
            routes,
            subnets: vec![subnet.clone()],
            main: true,
        });
        inv.nacls.push(Nacl {
            id: NaclId::parse(&format!("{}/acl", n.id)).map_err(|e| invalid(e.to_string()))?,
            vpc: n.id.clone(),
            entries: all.entries(),
            subnets: vec![subnet],
            default: true,
        });
    }
    for link in &doc.links {
        let side = |v: &VpcId| PeerSide {
            vpc: v.clone(),
            cidrs: cidrs_of.get(v).map(|c| c.to_vec()).unwrap_or_default(),
            owner: None,
        };
        let [a, b] = &link.between;
        inv.peerings.push(Peering {
            id: link.id.clone(),
            requester: side(a),
            accepter: side(b),
            active: true,
        });
    }
    for h in &doc.hosts {
        let group =
            GroupId::parse(&format!("{}/firewall", h.id)).map_err(|e| invalid(e.to_string()))?;
        let mut ingress = Vec::new();
        for rule in doc.rules.iter().filter(|r| {
            r.to.iter()
                .any(|t| *t == h.id.as_str() || *t == h.network.as_str())
        }) {
            let traffic = rule
                .ports
                .iter()
                .map(|p| ports(p).ok_or_else(|| invalid(format!("not a port spec: {p:?}"))))
                .try_fold(TrafficSet::none(), |acc, t| t.map(|t| acc.union(&t)))?;
            for from in &rule.from {
                for peer in peers(from, &doc, &cidrs_of)
                    .ok_or_else(|| invalid(format!("unknown rule source: {from:?}")))?
                {
                    ingress.push(GroupRule {
                        peer,
                        traffic: traffic.clone(),
                    });
                }
            }
        }
        let listening = match &h.listens {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|p| ports(p).ok_or_else(|| invalid(format!("not a port spec: {p:?}"))))
                    .try_fold(TrafficSet::none(), |acc, t| t.map(|t| acc.union(&t)))?,
            ),
        };
        inv.groups.push(SecurityGroup {
            id: group.clone(),
            vpc: Some(h.network.clone()),
            name: format!("{} firewall", h.id),
            ingress,
            egress: all.group_rules(),
        });
        inv.endpoints.push(Endpoint {
            id: h.id.clone(),
            kind: EndpointKind::Host,
            instance: None,
            name: None,
            subnet: SubnetId::parse(&format!("{}/subnet", h.network))
                .map_err(|e| invalid(e.to_string()))?,
            address: Some(h.address),
            public_address: h.public_address,
            public: h.public_address.is_some(),
            groups: vec![group],
            listening,
            tags: Tags::default(),
        });
    }
    Ok(inv)
}

/// Allow-everything rules for the parts a TOML description leaves to the host firewalls.
struct AllowAll;

impl AllowAll {
    fn any() -> impl Iterator<Item = Cidr> {
        ["0.0.0.0/0", "::/0"]
            .into_iter()
            .filter_map(|c| Cidr::parse(c).ok())
    }

    fn entries(&self) -> Vec<NaclEntry> {
        [false, true]
            .into_iter()
            .flat_map(|egress| {
                Self::any().map(move |cidr| NaclEntry {
                    number: 100,
                    egress,
                    allow: true,
                    cidr,
                    traffic: TrafficSet::all(),
                })
            })
            .collect()
    }

    fn group_rules(&self) -> Vec<GroupRule> {
        Self::any()
            .map(|c| GroupRule {
                peer: RulePeer::Cidr(c),
                traffic: TrafficSet::all(),
            })
            .collect()
    }
}

/// `tcp/22`, `udp/1000-2000`, `icmp`, `all`.
fn ports(spec: &str) -> Option<TrafficSet> {
    let (proto, range) = spec.split_once('/').unwrap_or((spec, "0-65535"));
    let protocol = Protocol::parse(proto).ok()?;
    Some(TrafficSet::of(protocol, PortRange::parse(range)?))
}

fn peers(
    from: &str,
    doc: &Document,
    cidrs_of: &BTreeMap<&VpcId, &[Cidr]>,
) -> Option<Vec<RulePeer>> {
    if from.eq_ignore_ascii_case("internet") {
        return Some(AllowAll::any().map(RulePeer::Cidr).collect());
    }
    if let Some(h) = doc.hosts.iter().find(|h| h.id.as_str() == from) {
        return Some(vec![RulePeer::Cidr(Cidr::host(h.address))]);
    }
    if let Some((_, cidrs)) = cidrs_of.iter().find(|(id, _)| id.as_str() == from) {
        return Some(cidrs.iter().map(|c| RulePeer::Cidr(*c)).collect());
    }
    Cidr::parse(from).ok().map(|c| vec![RulePeer::Cidr(c)])
}
