//! Terraform plans: the JSON of `terraform show -json PLAN`.
//!
//! Each entry of `resource_changes` that is not being destroyed is read from `change.after`.
//! A value known only after apply (`change.after_unknown`) is never guessed: an id that is
//! unknown becomes the resource address (`aws_vpc.prod`), and a reference to it is resolved
//! through the `configuration` section's `references`; any other unknown value that a rule
//! needs (a CIDR, a port) drops the rule and yields an `input/unknown-until-apply` warning.

use std::collections::HashMap;

use serde_json::Value;

use crate::addr::Cidr;
use crate::finding::{Finding, Severity, rules};
use crate::ident::{
    EndpointId, GatewayId, GroupId, NaclId, PeeringId, RouteTableId, SubnetId, VpcId,
};
use crate::inventory::{
    Endpoint, EndpointKind, GroupRule, InternetGateway, Inventory, Nacl, NaclEntry, PeerSide,
    Peering, Route, RouteTable, RouteTarget, RulePeer, SecurityGroup, Subnet, Tags, Vpc,
};
use crate::traffic::{PortRange, Protocol, TrafficSet};

/// Converts a plan.
pub(super) fn import(file: &str, plan: &Value) -> Inventory {
    let mut exprs: HashMap<String, &Value> = HashMap::new();
    if let Some(root) = plan.pointer("/configuration/root_module") {
        collect_expressions(root, "", &mut exprs);
    }
    let mut p = Plan {
        file,
        inv: Inventory::default(),
        routes: Vec::new(),
        associations: Vec::new(),
        group_rules: Vec::new(),
        subnet_groups: HashMap::new(),
    };
    let changes = plan
        .get("resource_changes")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let resources: Vec<Res<'_>> = changes
        .iter()
        .filter(|c| c.get("mode").and_then(Value::as_str) != Some("data"))
        .filter(|c| {
            let actions = c.pointer("/change/actions").and_then(Value::as_array);
            !actions.is_some_and(|a| {
                a.len() == 1 && a.first().and_then(Value::as_str) == Some("delete")
            })
        })
        .filter_map(|c| {
            let address = c.get("address").and_then(Value::as_str)?;
            Some(Res {
                address,
                kind: c.get("type").and_then(Value::as_str).unwrap_or(""),
                after: c.pointer("/change/after").unwrap_or(&Value::Null),
                unknown: c.pointer("/change/after_unknown").unwrap_or(&Value::Null),
                expr: exprs
                    .get(address.split('[').next().unwrap_or(address))
                    .copied()
                    .unwrap_or(&Value::Null),
                module: module_prefix(address),
            })
        })
        .collect();
    // Subnet groups first: databases name them.
    for r in resources.iter().filter(|r| r.kind == "aws_db_subnet_group") {
        let names = [r.text("name"), Some(r.id())];
        let subnets = r.refs("subnet_ids");
        for n in names.into_iter().flatten() {
            p.subnet_groups.insert(n, subnets.clone());
        }
    }
    for r in &resources {
        p.resource(r);
    }
    p.finish()
}

struct Plan<'f> {
    file: &'f str,
    inv: Inventory,
    /// `aws_route` resources: (route table id, route).
    routes: Vec<(String, Route)>,
    /// `aws_route_table_association`: (route table id, subnet id).
    associations: Vec<(String, String)>,
    /// Standalone rules: (group id, inbound?, rule).
    group_rules: Vec<(String, bool, GroupRule)>,
    subnet_groups: HashMap<String, Vec<String>>,
}

/// One resource of the plan with its planned values, unknown markers and expressions.
struct Res<'a> {
    address: &'a str,
    kind: &'a str,
    after: &'a Value,
    unknown: &'a Value,
    expr: &'a Value,
    module: String,
}

impl<'a> Res<'a> {
    fn is_unknown(&self, key: &str) -> bool {
        self.unknown.get(key).is_some_and(|u| {
            u.as_bool() == Some(true)
                || u.as_array()
                    .is_some_and(|a| a.iter().any(|x| x.as_bool() == Some(true)))
        })
    }

    fn text(&self, key: &str) -> Option<String> {
        self.after
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    fn id(&self) -> String {
        self.text("id").unwrap_or_else(|| self.address.to_owned())
    }

    /// A reference attribute: its value, or the address it refers to when unknown.
    fn reference(&self, key: &str) -> Option<String> {
        if let Some(v) = self.text(key) {
            return Some(v);
        }
        self.referenced(self.expr.get(key)).into_iter().next()
    }

    /// A list of references (`vpc_security_group_ids`, `subnet_ids`).
    fn refs(&self, key: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .after
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        if self.is_unknown(key) {
            out.extend(self.referenced(self.expr.get(key)));
        }
        out
    }

    /// Addresses named by an expression's `references`, module prefix applied.
    fn referenced(&self, expr: Option<&Value>) -> Vec<String> {
        let refs = expr
            .and_then(|e| e.get("references"))
            .and_then(Value::as_array);
        let mut out: Vec<String> = refs
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|r| r.strip_suffix(".id"))
            .map(|r| format!("{}{r}", self.module))
            .collect();
        out.dedup();
        out
    }

    /// Nested blocks (`ingress`, `route`, …) as resources of their own.
    fn blocks(&self, key: &str) -> Vec<Res<'a>> {
        let after = self
            .after
            .get(key)
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        after
            .iter()
            .enumerate()
            .map(|(i, a)| Res {
                address: self.address,
                kind: self.kind,
                after: a,
                unknown: self
                    .unknown
                    .get(key)
                    .and_then(|u| u.get(i))
                    .unwrap_or(&Value::Null),
                expr: self
                    .expr
                    .get(key)
                    .and_then(|e| e.get(i))
                    .unwrap_or(&Value::Null),
                module: self.module.clone(),
            })
            .collect()
    }

    fn tags(&self) -> Tags {
        let map = self.after.get("tags").and_then(Value::as_object);
        Tags(
            map.into_iter()
                .flatten()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect(),
        )
    }

    fn cidrs(&self, keys: &[&str]) -> Vec<Cidr> {
        let mut out = Vec::new();
        for key in keys {
            match self.after.get(*key) {
                Some(Value::String(s)) => out.extend(Cidr::parse(s).ok()),
                Some(Value::Array(a)) => out.extend(
                    a.iter()
                        .filter_map(Value::as_str)
                        .filter_map(|s| Cidr::parse(s).ok()),
                ),
                _ => {}
            }
        }
        out
    }

    fn int(&self, key: &str) -> Option<i64> {
        self.after.get(key).and_then(Value::as_i64)
    }

    /// Protocol and ports; `None` when a port is unknown or malformed.
    fn traffic(&self, protocol_key: &str) -> Option<TrafficSet> {
        let protocol =
            Protocol::parse(&self.text(protocol_key).unwrap_or_else(|| "-1".to_owned())).ok()?;
        let ports = match (self.int("from_port"), self.int("to_port")) {
            _ if !protocol.has_ports() => PortRange::all(),
            (Some(0), Some(0)) => PortRange::all(),
            (Some(f), Some(t)) => PortRange::new(f, t).ok()?,
            (None, None) => PortRange::all(),
            _ => return None,
        };
        Some(TrafficSet::of(protocol, ports))
    }
}

impl Plan<'_> {
    fn unknown(&mut self, r: &Res<'_>, what: &str) {
        self.inv.notes.push(
            Finding::new(
                rules::UNKNOWN_UNTIL_APPLY,
                None,
                Severity::Warning,
                r.address,
                format!(
                    "{} is known only after apply: {what} left out of the analysis",
                    r.address
                ),
            )
            .in_file(self.file),
        );
    }

    fn resource(&mut self, r: &Res<'_>) {
        match r.kind {
            "aws_vpc" => {
                let id = r.id();
                if let Ok(id) = VpcId::parse(&id) {
                    if r.is_unknown("cidr_block") {
                        self.unknown(r, "cidr_block");
                    }
                    self.inv.vpcs.push(Vpc {
                        id,
                        cidrs: r.cidrs(&["cidr_block", "ipv6_cidr_block"]),
                        tags: r.tags(),
                        owner: None,
                        environment: None,
                    });
                }
            }
            "aws_subnet" => {
                let (Ok(id), Some(Ok(vpc))) = (
                    SubnetId::parse(&r.id()),
                    r.reference("vpc_id").map(|v| VpcId::parse(&v)),
                ) else {
                    return self.unknown(r, "vpc_id");
                };
                self.inv.subnets.push(Subnet {
                    id,
                    vpc,
                    cidrs: r.cidrs(&["cidr_block", "ipv6_cidr_block"]),
                    tags: r.tags(),
                });
            }
            "aws_internet_gateway" => {
                if let Ok(id) = GatewayId::parse(&r.id()) {
                    let vpcs = r
                        .reference("vpc_id")
                        .and_then(|v| VpcId::parse(&v).ok())
                        .into_iter()
                        .collect();
                    self.inv
                        .internet_gateways
                        .push(InternetGateway { id, vpcs });
                }
            }
            "aws_route_table" => {
                let (Ok(id), Some(Ok(vpc))) = (
                    RouteTableId::parse(&r.id()),
                    r.reference("vpc_id").map(|v| VpcId::parse(&v)),
                ) else {
                    return self.unknown(r, "vpc_id");
                };
                let routes = r
                    .blocks("route")
                    .iter()
                    .filter_map(|b| self.route(b, "cidr_block", "ipv6_cidr_block"))
                    .collect();
                self.inv.route_tables.push(RouteTable {
                    id,
                    vpc,
                    routes,
                    subnets: Vec::new(),
                    main: false,
                });
            }
            "aws_route" => {
                if let (Some(rt), Some(route)) = (
                    r.reference("route_table_id"),
                    self.route(r, "destination_cidr_block", "destination_ipv6_cidr_block"),
                ) {
                    self.routes.push((rt, route));
                }
            }
            "aws_route_table_association" => {
                if let (Some(rt), Some(s)) =
                    (r.reference("route_table_id"), r.reference("subnet_id"))
                {
                    self.associations.push((rt, s));
                }
            }
            "aws_security_group" => {
                let Ok(id) = GroupId::parse(&r.id()) else {
                    return;
                };
                let mut ingress = Vec::new();
                let mut egress = Vec::new();
                for (key, list) in [("ingress", &mut ingress), ("egress", &mut egress)] {
                    for b in r.blocks(key) {
                        list.extend(self.inline_rules(&b, &id));
                    }
                }
                let vpc = r.reference("vpc_id").and_then(|v| VpcId::parse(&v).ok());
                self.inv.groups.push(SecurityGroup {
                    id,
                    vpc,
                    name: r.text("name").unwrap_or_default(),
                    ingress,
                    egress,
                });
            }
            "aws_security_group_rule" => {
                let Some(group) = r.reference("security_group_id") else {
                    return self.unknown(r, "security_group_id");
                };
                let inbound = r.text("type").as_deref() != Some("egress");
                let Ok(gid) = GroupId::parse(&group) else {
                    return;
                };
                for rule in self.inline_rules(r, &gid) {
                    self.group_rules.push((group.clone(), inbound, rule));
                }
            }
            "aws_vpc_security_group_ingress_rule" | "aws_vpc_security_group_egress_rule" => {
                let Some(group) = r.reference("security_group_id") else {
                    return self.unknown(r, "security_group_id");
                };
                let inbound = r.kind.ends_with("ingress_rule");
                let Some(traffic) = r.traffic("ip_protocol") else {
                    return self.unknown(r, "ports");
                };
                let peer = if let Some(c) = r.cidrs(&["cidr_ipv4", "cidr_ipv6"]).into_iter().next()
                {
                    Some(RulePeer::Cidr(c))
                } else if let Some(g) = r.reference("referenced_security_group_id") {
                    GroupId::parse(&g).ok().map(RulePeer::Group)
                } else {
                    r.text("prefix_list_id").map(RulePeer::PrefixList)
                };
                match peer {
                    Some(peer) => {
                        self.group_rules
                            .push((group, inbound, GroupRule { peer, traffic }))
                    }
                    None => self.unknown(r, "the rule's source or destination"),
                }
            }
            "aws_network_acl" => {
                let (Ok(id), Some(Ok(vpc))) = (
                    NaclId::parse(&r.id()),
                    r.reference("vpc_id").map(|v| VpcId::parse(&v)),
                ) else {
                    return self.unknown(r, "vpc_id");
                };
                let mut entries = Vec::new();
                for (key, egress) in [("ingress", false), ("egress", true)] {
                    for b in r.blocks(key) {
                        let cidr = b
                            .cidrs(&["cidr_block", "ipv6_cidr_block"])
                            .into_iter()
                            .next();
                        match (b.int("rule_no"), cidr, b.traffic("protocol")) {
                            (Some(n), Some(cidr), Some(traffic)) => entries.push(NaclEntry {
                                number: u32::try_from(n).unwrap_or(u32::MAX),
                                egress,
                                allow: b.text("action").as_deref() == Some("allow"),
                                cidr,
                                traffic,
                            }),
                            _ => self.unknown(&b, &format!("an {key} entry")),
                        }
                    }
                }
                let subnets = r
                    .refs("subnet_ids")
                    .iter()
                    .filter_map(|s| SubnetId::parse(s).ok())
                    .collect();
                self.inv.nacls.push(Nacl {
                    id,
                    vpc,
                    entries,
                    subnets,
                    default: false,
                });
            }
            "aws_vpc_peering_connection" => {
                let (Ok(id), Some(a), Some(b)) = (
                    PeeringId::parse(&r.id()),
                    r.reference("vpc_id"),
                    r.reference("peer_vpc_id"),
                ) else {
                    return self.unknown(r, "vpc_id or peer_vpc_id");
                };
                let side = |v: String, owner: Option<String>| {
                    VpcId::parse(&v).ok().map(|vpc| PeerSide {
                        vpc,
                        cidrs: Vec::new(),
                        owner,
                    })
                };
                if let (Some(requester), Some(accepter)) =
                    (side(a, None), side(b, r.text("peer_owner_id")))
                {
                    self.inv.peerings.push(Peering {
                        id,
                        requester,
                        accepter,
                        active: true,
                    });
                }
            }
            "aws_instance" => {
                let Some(subnet) = r
                    .reference("subnet_id")
                    .and_then(|s| SubnetId::parse(&s).ok())
                else {
                    return self.unknown(r, "subnet_id");
                };
                let Ok(id) = EndpointId::parse(&r.id()) else {
                    return;
                };
                let public = r
                    .after
                    .get("associate_public_ip_address")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let tags = r.tags();
                self.inv.endpoints.push(Endpoint {
                    id,
                    kind: EndpointKind::Interface,
                    instance: None,
                    name: tags.value("Name").map(str::to_owned),
                    subnet,
                    address: r.text("private_ip").and_then(|a| a.parse().ok()),
                    public_address: r.text("public_ip").and_then(|a| a.parse().ok()),
                    public,
                    groups: r
                        .refs("vpc_security_group_ids")
                        .iter()
                        .filter_map(|g| GroupId::parse(g).ok())
                        .collect(),
                    listening: None,
                    tags,
                });
            }
            "aws_db_instance" => {
                let group = r.reference("db_subnet_group_name");
                let subnet = group
                    .and_then(|g| self.subnet_groups.get(&g))
                    .and_then(|s| s.first())
                    .and_then(|s| SubnetId::parse(s).ok());
                let (Some(subnet), Ok(id)) = (
                    subnet,
                    EndpointId::parse(
                        &r.text("identifier").unwrap_or_else(|| r.address.to_owned()),
                    ),
                ) else {
                    return self.unknown(r, "db_subnet_group_name");
                };
                let port = r.int("port").and_then(|p| u16::try_from(p).ok());
                self.inv.endpoints.push(Endpoint {
                    id,
                    kind: EndpointKind::Database,
                    instance: None,
                    name: None,
                    subnet,
                    address: None,
                    public_address: None,
                    public: r
                        .after
                        .get("publicly_accessible")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    groups: r
                        .refs("vpc_security_group_ids")
                        .iter()
                        .filter_map(|g| GroupId::parse(g).ok())
                        .collect(),
                    listening: port.map(|p| TrafficSet::tcp(PortRange::single(p))),
                    tags: r.tags(),
                });
            }
            _ => {}
        }
    }

    fn route(&mut self, r: &Res<'_>, v4: &str, v6: &str) -> Option<Route> {
        let Some(destination) = r.cidrs(&[v4, v6]).into_iter().next() else {
            if r.is_unknown(v4) || r.is_unknown(v6) {
                self.unknown(r, "a route destination");
            }
            return None;
        };
        let gw = |k: &str| r.reference(k).filter(|s| !s.is_empty());
        let target = if let Some(p) =
            gw("vpc_peering_connection_id").and_then(|p| PeeringId::parse(&p).ok())
        {
            RouteTarget::Peering(p)
        } else if let Some(n) = gw("nat_gateway_id").and_then(|n| GatewayId::parse(&n).ok()) {
            RouteTarget::Nat(n)
        } else if let Some(t) = gw("transit_gateway_id").and_then(|t| GatewayId::parse(&t).ok()) {
            RouteTarget::Transit(t)
        } else if let Some(g) = gw("gateway_id") {
            match GatewayId::parse(&g) {
                Ok(id) if g.starts_with("igw-") || g.contains("aws_internet_gateway.") => {
                    RouteTarget::Internet(id)
                }
                _ if g == "local" => RouteTarget::Local,
                _ => RouteTarget::Other(g),
            }
        } else {
            RouteTarget::Other("unknown target".to_owned())
        };
        Some(Route {
            destination,
            target,
        })
    }

    /// Rules of an inline block or an `aws_security_group_rule`: one per peer.
    fn inline_rules(&mut self, b: &Res<'_>, own: &GroupId) -> Vec<GroupRule> {
        for key in [
            "cidr_blocks",
            "ipv6_cidr_blocks",
            "from_port",
            "to_port",
            "protocol",
        ] {
            if b.is_unknown(key) {
                self.unknown(b, &format!("a rule of {own} ({key})"));
                return Vec::new();
            }
        }
        let Some(traffic) = b.traffic("protocol") else {
            self.unknown(b, &format!("a rule of {own} (ports)"));
            return Vec::new();
        };
        let mut peers: Vec<RulePeer> = b
            .cidrs(&["cidr_blocks", "ipv6_cidr_blocks"])
            .into_iter()
            .map(RulePeer::Cidr)
            .collect();
        let mut groups = b.refs("security_groups");
        groups.extend(b.reference("source_security_group_id"));
        peers.extend(
            groups
                .iter()
                .filter_map(|g| GroupId::parse(g).ok())
                .map(RulePeer::Group),
        );
        if b.after.get("self").and_then(Value::as_bool) == Some(true) {
            peers.push(RulePeer::Group(own.clone()));
        }
        peers.extend(
            b.refs("prefix_list_ids")
                .into_iter()
                .map(RulePeer::PrefixList),
        );
        peers
            .into_iter()
            .map(|peer| GroupRule {
                peer,
                traffic: traffic.clone(),
            })
            .collect()
    }

    fn finish(mut self) -> Inventory {
        for (rt, route) in self.routes {
            if let Some(t) = self
                .inv
                .route_tables
                .iter_mut()
                .find(|t| t.id.as_str() == rt)
            {
                t.routes.push(route);
            }
        }
        for (rt, subnet) in self.associations {
            if let (Some(t), Ok(s)) = (
                self.inv
                    .route_tables
                    .iter_mut()
                    .find(|t| t.id.as_str() == rt),
                SubnetId::parse(&subnet),
            ) {
                t.subnets.push(s);
            }
        }
        for (group, inbound, rule) in self.group_rules {
            match self.inv.groups.iter_mut().find(|g| g.id.as_str() == group) {
                Some(g) if inbound => g.ingress.push(rule),
                Some(g) => g.egress.push(rule),
                None => self.inv.notes.push(
                    Finding::new(
                        rules::DANGLING_REFERENCE,
                        None,
                        Severity::Warning,
                        group.as_str(),
                        format!(
                            "a rule names security group {group}, which the plan does not hold"
                        ),
                    )
                    .in_file(self.file),
                ),
            }
        }
        self.inv
    }
}

/// `module.a.module.b.aws_x.y` → `module.a.module.b.`.
fn module_prefix(address: &str) -> String {
    let mut prefix = String::new();
    let mut parts = address.split('.');
    while let (Some("module"), Some(name)) = (parts.next(), parts.next()) {
        prefix.push_str("module.");
        prefix.push_str(name);
        prefix.push('.');
    }
    prefix
}

/// Maps resource addresses (with module prefixes) to their `expressions`.
fn collect_expressions<'v>(module: &'v Value, prefix: &str, out: &mut HashMap<String, &'v Value>) {
    for r in module
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(address), Some(expr)) = (
            r.get("address").and_then(Value::as_str),
            r.get("expressions"),
        ) {
            out.insert(format!("{prefix}{address}"), expr);
        }
    }
    for (name, call) in module
        .get("module_calls")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(child) = call.get("module") {
            collect_expressions(child, &format!("{prefix}module.{name}."), out);
        }
    }
}
