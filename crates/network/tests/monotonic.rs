//! Property tests: allow rules only ever add flows. Adding one never removes a flow;
//! removing one never adds a flow.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use proptest::prelude::*;
use rampart_network::{
    AddrSet, Cidr, Endpoint, EndpointId, EndpointKind, GatewayId, GroupId, GroupRule,
    InternetGateway, Inventory, Model, Nacl, NaclEntry, NaclId, NetworkConfig, Party, PeerSide,
    Peering, PeeringId, PortRange, Protocol, Route, RouteTable, RouteTableId, RouteTarget,
    RulePeer, SecurityGroup, Subnet, SubnetId, Tags, TrafficSet, Vpc, VpcId,
};

const BLOCKS: [&str; 6] = [
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.2.0.0/16",
    "10.1.1.5",
    "10.2.1.0/24",
];

#[derive(Debug, Clone)]
struct RuleSpec {
    group: usize,
    inbound: bool,
    peer: usize,
    proto: u8,
    from: u16,
    len: u16,
}

#[derive(Debug, Clone)]
struct AclSpec {
    vpc: usize,
    egress: bool,
    number: u32,
    allow: bool,
    block: usize,
    proto: u8,
    from: u16,
    len: u16,
}

fn traffic(proto: u8, from: u16, len: u16) -> TrafficSet {
    let protocol = match proto % 4 {
        0 => Protocol::All,
        1 => Protocol::Number(6),
        2 => Protocol::Number(17),
        _ => Protocol::Number(1),
    };
    let to = from.saturating_add(len);
    TrafficSet::of(
        protocol,
        PortRange::new(i64::from(from), i64::from(to)).unwrap(),
    )
}

fn id<T>(parse: fn(&str) -> Result<T, rampart_network::BadId>, s: &str) -> T {
    parse(s).unwrap()
}

/// Two peered VPCs with two endpoints each, an internet gateway, and the given rules.
fn inventory(rules: &[RuleSpec], acls: &[AclSpec]) -> Inventory {
    let cidr = |s: &str| Cidr::parse(s).unwrap();
    let mut inv = Inventory::default();
    for v in 0..2 {
        let vpc = id(VpcId::parse, &format!("vpc-{v}"));
        let block = format!("10.{}.0.0/16", v + 1);
        inv.vpcs.push(Vpc {
            id: vpc.clone(),
            cidrs: vec![cidr(&block)],
            tags: Tags::default(),
            owner: None,
            environment: Some(format!("env{v}")),
        });
        inv.subnets.push(Subnet {
            id: id(SubnetId::parse, &format!("subnet-{v}")),
            vpc: vpc.clone(),
            cidrs: vec![cidr(&format!("10.{}.1.0/24", v + 1))],
            tags: Tags::default(),
        });
        let other = format!("10.{}.0.0/16", 2 - v);
        inv.route_tables.push(RouteTable {
            id: id(RouteTableId::parse, &format!("rtb-{v}")),
            vpc: vpc.clone(),
            routes: vec![
                Route {
                    destination: cidr(&other),
                    target: RouteTarget::Peering(id(PeeringId::parse, "pcx-1")),
                },
                Route {
                    destination: cidr("0.0.0.0/0"),
                    target: RouteTarget::Internet(id(GatewayId::parse, &format!("igw-{v}"))),
                },
            ],
            subnets: vec![id(SubnetId::parse, &format!("subnet-{v}"))],
            main: true,
        });
        inv.internet_gateways.push(InternetGateway {
            id: id(GatewayId::parse, &format!("igw-{v}")),
            vpcs: vec![vpc.clone()],
        });
        let entries = acls
            .iter()
            .filter(|a| a.vpc % 2 == v)
            .map(|a| NaclEntry {
                number: a.number,
                egress: a.egress,
                allow: a.allow,
                cidr: cidr(BLOCKS[a.block % BLOCKS.len()]),
                traffic: traffic(a.proto, a.from, a.len),
            })
            .collect();
        inv.nacls.push(Nacl {
            id: id(NaclId::parse, &format!("acl-{v}")),
            vpc: vpc.clone(),
            entries,
            subnets: vec![id(SubnetId::parse, &format!("subnet-{v}"))],
            default: true,
        });
        for g in 0..2 {
            inv.groups.push(SecurityGroup {
                id: id(GroupId::parse, &format!("sg-{v}{g}")),
                vpc: Some(vpc.clone()),
                name: format!("g{g}"),
                ingress: Vec::new(),
                egress: Vec::new(),
            });
        }
        for e in 0..2 {
            inv.endpoints.push(Endpoint {
                id: id(EndpointId::parse, &format!("eni-{v}{e}")),
                kind: EndpointKind::Interface,
                instance: None,
                name: None,
                subnet: id(SubnetId::parse, &format!("subnet-{v}")),
                address: Some(format!("10.{}.1.{}", v + 1, 5 + e).parse().unwrap()),
                public_address: (e == 0).then(|| format!("203.0.113.{v}").parse().unwrap()),
                public: e == 0,
                groups: vec![id(GroupId::parse, &format!("sg-{v}{e}"))],
                listening: None,
                tags: Tags::default(),
            });
        }
    }
    inv.peerings.push(Peering {
        id: id(PeeringId::parse, "pcx-1"),
        requester: PeerSide {
            vpc: id(VpcId::parse, "vpc-0"),
            cidrs: vec![],
            owner: None,
        },
        accepter: PeerSide {
            vpc: id(VpcId::parse, "vpc-1"),
            cidrs: vec![],
            owner: None,
        },
        active: true,
    });
    for r in rules {
        let groups = &mut inv.groups;
        let g = r.group % groups.len();
        let peer = if r.peer % 3 == 0 {
            RulePeer::Group(id(
                GroupId::parse,
                &format!("sg-{}{}", (r.peer / 3) % 2, (r.peer / 6) % 2),
            ))
        } else {
            RulePeer::Cidr(cidr(BLOCKS[r.peer % BLOCKS.len()]))
        };
        let rule = GroupRule {
            peer,
            traffic: traffic(r.proto, r.from, r.len),
        };
        if r.inbound {
            groups[g].ingress.push(rule)
        } else {
            groups[g].egress.push(rule)
        }
    }
    inv
}

/// Every flow between endpoints and from the internet, as traffic per (source, destination).
fn flows(inv: &Inventory) -> Vec<TrafficSet> {
    let cfg = NetworkConfig::default();
    let model = Model::new(inv, &cfg);
    let mut parties: Vec<Party> = (0..inv.endpoints.len()).map(Party::Endpoint).collect();
    parties.push(Party::Internet(AddrSet::internet()));
    let mut out = Vec::new();
    for from in &parties {
        for to in parties.iter().filter(|p| matches!(p, Party::Endpoint(_))) {
            if from == to {
                continue;
            }
            let v = model.evaluate(from, to, &TrafficSet::all(), false);
            out.push(v.flow().map(|f| f.traffic.clone()).unwrap_or_default());
        }
    }
    out
}

fn subset(a: &[TrafficSet], b: &[TrafficSet]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.difference(y).is_empty())
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        0usize..4,
        any::<bool>(),
        0usize..12,
        any::<u8>(),
        0u16..2000,
        0u16..3000,
    )
        .prop_map(|(group, inbound, peer, proto, from, len)| RuleSpec {
            group,
            inbound,
            peer,
            proto,
            from,
            len,
        })
}

fn acl_spec() -> impl Strategy<Value = AclSpec> {
    (
        0usize..2,
        any::<bool>(),
        1u32..300,
        any::<bool>(),
        0usize..6,
        any::<u8>(),
        0u16..2000,
        0u16..65535,
    )
        .prop_map(
            |(vpc, egress, number, allow, block, proto, from, len)| AclSpec {
                vpc,
                egress,
                number,
                allow,
                block,
                proto,
                from,
                len,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn adding_a_security_group_rule_never_removes_a_flow(rules in proptest::collection::vec(rule_spec(), 0..10), acls in proptest::collection::vec(acl_spec(), 0..8), extra in rule_spec()) {
        let before = flows(&inventory(&rules, &acls));
        let mut more = rules.clone();
        more.push(extra);
        let after = flows(&inventory(&more, &acls));
        prop_assert!(subset(&before, &after));
    }

    #[test]
    fn removing_a_security_group_rule_never_adds_a_flow(rules in proptest::collection::vec(rule_spec(), 1..10), acls in proptest::collection::vec(acl_spec(), 0..8), pick in any::<usize>()) {
        let before = flows(&inventory(&rules, &acls));
        let mut fewer = rules.clone();
        fewer.remove(pick % rules.len());
        let after = flows(&inventory(&fewer, &acls));
        prop_assert!(subset(&after, &before));
    }

    #[test]
    fn adding_an_acl_allow_entry_never_removes_a_flow(rules in proptest::collection::vec(rule_spec(), 0..10), acls in proptest::collection::vec(acl_spec(), 0..8), mut extra in acl_spec()) {
        extra.allow = true;
        // Rule numbers are unique within an ACL direction, as AWS enforces.
        prop_assume!(!acls.iter().any(|a| a.vpc % 2 == extra.vpc % 2 && a.egress == extra.egress && a.number == extra.number));
        let before = flows(&inventory(&rules, &acls));
        let mut more = acls.clone();
        more.push(extra);
        let after = flows(&inventory(&rules, &more));
        prop_assert!(subset(&before, &after));
    }
}
