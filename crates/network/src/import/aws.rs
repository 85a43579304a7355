//! AWS CLI JSON, field names exactly as `aws ec2 describe-*` and `aws rds
//! describe-db-instances` print them. Unknown fields are ignored; malformed addresses fail
//! with their JSON path (the `Cidr` newtype is parsed during deserialization).

use std::net::IpAddr;

use serde::Deserialize;

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

/// The top-level keys that mark a file as AWS CLI output.
pub(super) const TOP_LEVEL_KEYS: &[&str] = &[
    "Vpcs",
    "Subnets",
    "RouteTables",
    "SecurityGroups",
    "NetworkAcls",
    "VpcPeeringConnections",
    "Reservations",
    "NetworkInterfaces",
    "InternetGateways",
    "NatGateways",
    "DBInstances",
];

/// One file: any combination of the top-level keys.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct AwsFile {
    vpcs: Vec<AwsVpc>,
    subnets: Vec<AwsSubnet>,
    route_tables: Vec<AwsRouteTable>,
    security_groups: Vec<AwsGroup>,
    network_acls: Vec<AwsNacl>,
    vpc_peering_connections: Vec<AwsPeering>,
    reservations: Vec<AwsReservation>,
    network_interfaces: Vec<AwsInterface>,
    internet_gateways: Vec<AwsIgw>,
    nat_gateways: Vec<AwsNat>,
    #[serde(rename = "DBInstances")]
    db_instances: Vec<AwsDb>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AwsTag {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsVpc {
    vpc_id: VpcId,
    cidr_block: Option<Cidr>,
    #[serde(default)]
    cidr_block_association_set: Vec<AwsCidrAssoc>,
    #[serde(default)]
    ipv6_cidr_block_association_set: Vec<AwsCidrAssoc>,
    owner_id: Option<String>,
    #[serde(default)]
    tags: Vec<AwsTag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsCidrAssoc {
    cidr_block: Option<Cidr>,
    ipv6_cidr_block: Option<Cidr>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsSubnet {
    subnet_id: SubnetId,
    vpc_id: VpcId,
    cidr_block: Option<Cidr>,
    #[serde(default)]
    ipv6_cidr_block_association_set: Vec<AwsCidrAssoc>,
    #[serde(default)]
    tags: Vec<AwsTag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsRouteTable {
    route_table_id: RouteTableId,
    vpc_id: VpcId,
    #[serde(default)]
    routes: Vec<AwsRoute>,
    #[serde(default)]
    associations: Vec<AwsRtAssoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AwsRoute {
    destination_cidr_block: Option<Cidr>,
    destination_ipv6_cidr_block: Option<Cidr>,
    destination_prefix_list_id: Option<String>,
    gateway_id: Option<String>,
    nat_gateway_id: Option<String>,
    vpc_peering_connection_id: Option<String>,
    transit_gateway_id: Option<String>,
    instance_id: Option<String>,
    network_interface_id: Option<String>,
    egress_only_internet_gateway_id: Option<String>,
    state: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AwsRtAssoc {
    main: bool,
    subnet_id: Option<SubnetId>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsGroup {
    group_id: GroupId,
    #[serde(default)]
    group_name: String,
    vpc_id: Option<VpcId>,
    #[serde(default)]
    ip_permissions: Vec<AwsPermission>,
    #[serde(default)]
    ip_permissions_egress: Vec<AwsPermission>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsPermission {
    ip_protocol: Protocol,
    from_port: Option<i64>,
    to_port: Option<i64>,
    #[serde(default)]
    ip_ranges: Vec<AwsIpRange>,
    #[serde(default)]
    ipv6_ranges: Vec<AwsIpv6Range>,
    #[serde(default)]
    prefix_list_ids: Vec<AwsPrefixList>,
    #[serde(default)]
    user_id_group_pairs: Vec<AwsGroupPair>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsIpRange {
    cidr_ip: Cidr,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsIpv6Range {
    cidr_ipv6: Cidr,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsPrefixList {
    prefix_list_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsGroupPair {
    group_id: GroupId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsNacl {
    network_acl_id: NaclId,
    vpc_id: VpcId,
    #[serde(default)]
    is_default: bool,
    #[serde(default)]
    entries: Vec<AwsNaclEntry>,
    #[serde(default)]
    associations: Vec<AwsNaclAssoc>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsNaclEntry {
    rule_number: u32,
    protocol: Protocol,
    rule_action: String,
    egress: bool,
    cidr_block: Option<Cidr>,
    ipv6_cidr_block: Option<Cidr>,
    port_range: Option<AwsPortRange>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsPortRange {
    from: i64,
    to: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsNaclAssoc {
    subnet_id: SubnetId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsPeering {
    vpc_peering_connection_id: PeeringId,
    accepter_vpc_info: AwsPeerInfo,
    requester_vpc_info: AwsPeerInfo,
    status: Option<AwsStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsPeerInfo {
    vpc_id: VpcId,
    cidr_block: Option<Cidr>,
    #[serde(default)]
    cidr_block_set: Vec<AwsCidrAssoc>,
    #[serde(default)]
    ipv6_cidr_block_set: Vec<AwsCidrAssoc>,
    owner_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsStatus {
    code: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsReservation {
    #[serde(default)]
    instances: Vec<AwsInstance>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsInstance {
    instance_id: EndpointId,
    subnet_id: Option<SubnetId>,
    private_ip_address: Option<IpAddr>,
    public_ip_address: Option<IpAddr>,
    #[serde(default)]
    security_groups: Vec<AwsGroupRef>,
    #[serde(default)]
    network_interfaces: Vec<AwsInterface>,
    #[serde(default)]
    tags: Vec<AwsTag>,
    state: Option<AwsInstanceState>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsInstanceState {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsGroupRef {
    group_id: GroupId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsInterface {
    network_interface_id: EndpointId,
    subnet_id: Option<SubnetId>,
    private_ip_address: Option<IpAddr>,
    association: Option<AwsAssociation>,
    #[serde(default)]
    groups: Vec<AwsGroupRef>,
    attachment: Option<AwsAttachment>,
    #[serde(default)]
    tag_set: Vec<AwsTag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsAssociation {
    public_ip: Option<IpAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsAttachment {
    instance_id: Option<EndpointId>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsIgw {
    internet_gateway_id: GatewayId,
    #[serde(default)]
    attachments: Vec<AwsIgwAttachment>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsIgwAttachment {
    vpc_id: VpcId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsNat {
    nat_gateway_id: GatewayId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsDb {
    #[serde(rename = "DBInstanceIdentifier")]
    db_instance_identifier: EndpointId,
    endpoint: Option<AwsDbEndpoint>,
    #[serde(default)]
    publicly_accessible: bool,
    #[serde(default)]
    vpc_security_groups: Vec<AwsDbGroup>,
    #[serde(rename = "DBSubnetGroup")]
    db_subnet_group: Option<AwsDbSubnetGroup>,
    availability_zone: Option<String>,
    #[serde(default)]
    tag_list: Vec<AwsTag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsDbEndpoint {
    port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsDbGroup {
    vpc_security_group_id: GroupId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsDbSubnetGroup {
    #[serde(default)]
    subnets: Vec<AwsDbSubnet>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsDbSubnet {
    subnet_identifier: SubnetId,
    subnet_availability_zone: Option<AwsAz>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsAz {
    name: String,
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Protocol::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Converts a parsed file into inventory items.
pub(super) fn import(file: &str, aws: AwsFile) -> Inventory {
    let mut inv = Inventory::default();
    let warn = |resource: String, message: String| {
        Finding::new(
            rules::DANGLING_REFERENCE,
            None,
            Severity::Warning,
            resource,
            message,
        )
        .in_file(file)
    };
    let mut notes = Vec::new();

    for v in aws.vpcs {
        let mut cidrs: Vec<Cidr> = v.cidr_block.into_iter().collect();
        for a in v
            .cidr_block_association_set
            .iter()
            .chain(&v.ipv6_cidr_block_association_set)
        {
            cidrs.extend(a.cidr_block.iter().chain(&a.ipv6_cidr_block));
        }
        cidrs.dedup();
        inv.vpcs.push(Vpc {
            id: v.vpc_id,
            cidrs,
            tags: tags(v.tags),
            owner: v.owner_id,
            environment: None,
        });
    }
    for s in aws.subnets {
        let mut cidrs: Vec<Cidr> = s.cidr_block.into_iter().collect();
        cidrs.extend(
            s.ipv6_cidr_block_association_set
                .iter()
                .filter_map(|a| a.ipv6_cidr_block),
        );
        inv.subnets.push(Subnet {
            id: s.subnet_id,
            vpc: s.vpc_id,
            cidrs,
            tags: tags(s.tags),
        });
    }
    for rt in aws.route_tables {
        let mut routes = Vec::new();
        for r in rt.routes {
            let Some(destination) = r.destination_cidr_block.or(r.destination_ipv6_cidr_block)
            else {
                // Prefix-list destinations are gateway endpoints (S3, DynamoDB): AWS services,
                // not parties of the checks.
                continue;
            };
            routes.push(Route {
                destination,
                target: route_target(&r),
            });
        }
        inv.route_tables.push(RouteTable {
            id: rt.route_table_id,
            vpc: rt.vpc_id,
            routes,
            subnets: rt
                .associations
                .iter()
                .filter_map(|a| a.subnet_id.clone())
                .collect(),
            main: rt.associations.iter().any(|a| a.main),
        });
    }
    for g in aws.security_groups {
        let ingress = permissions(&g.ip_permissions, &g.group_id, file, &mut notes);
        let egress = permissions(&g.ip_permissions_egress, &g.group_id, file, &mut notes);
        inv.groups.push(SecurityGroup {
            id: g.group_id,
            vpc: g.vpc_id,
            name: g.group_name,
            ingress,
            egress,
        });
    }
    for n in aws.network_acls {
        let mut entries = Vec::new();
        for e in n.entries {
            let Some(cidr) = e.cidr_block.or(e.ipv6_cidr_block) else {
                continue;
            };
            let ports = match &e.port_range {
                Some(p) if e.protocol.has_ports() => match PortRange::new(p.from, p.to) {
                    Ok(r) => r,
                    Err(bad) => {
                        notes.push(warn(
                            n.network_acl_id.to_string(),
                            format!("entry {} skipped: {bad}", e.rule_number),
                        ));
                        continue;
                    }
                },
                _ => PortRange::all(),
            };
            entries.push(NaclEntry {
                number: e.rule_number,
                egress: e.egress,
                allow: e.rule_action.eq_ignore_ascii_case("allow"),
                cidr,
                traffic: TrafficSet::of(e.protocol, ports),
            });
        }
        inv.nacls.push(Nacl {
            id: n.network_acl_id,
            vpc: n.vpc_id,
            entries,
            subnets: n.associations.into_iter().map(|a| a.subnet_id).collect(),
            default: n.is_default,
        });
    }
    for p in aws.vpc_peering_connections {
        let code = p
            .status
            .as_ref()
            .map(|s| s.code.as_str())
            .unwrap_or("active");
        inv.peerings.push(Peering {
            id: p.vpc_peering_connection_id,
            requester: peer_side(p.requester_vpc_info),
            accepter: peer_side(p.accepter_vpc_info),
            active: code == "active",
        });
    }
    for i in aws.reservations.into_iter().flat_map(|r| r.instances) {
        if i.state.as_ref().is_some_and(|s| s.name == "terminated") {
            continue;
        }
        let itags = tags(i.tags);
        let name = itags.value("Name").map(str::to_owned);
        if i.network_interfaces.is_empty() {
            let Some(subnet) = i.subnet_id else {
                continue;
            };
            inv.endpoints.push(Endpoint {
                id: i.instance_id.clone(),
                kind: EndpointKind::Interface,
                instance: Some(i.instance_id),
                name,
                subnet,
                address: i.private_ip_address,
                public_address: i.public_ip_address,
                public: i.public_ip_address.is_some(),
                groups: i.security_groups.into_iter().map(|g| g.group_id).collect(),
                listening: None,
                tags: itags,
            });
            continue;
        }
        for eni in i.network_interfaces {
            if let Some(mut ep) = interface(eni) {
                ep.instance = Some(i.instance_id.clone());
                ep.name = name.clone();
                ep.tags = itags.clone();
                inv.endpoints.push(ep);
            }
        }
    }
    for eni in aws.network_interfaces {
        let id = eni.network_interface_id.to_string();
        match interface(eni) {
            Some(ep) => inv.endpoints.push(ep),
            None => notes.push(warn(id, "interface without a subnet skipped".to_owned())),
        }
    }
    for g in aws.internet_gateways {
        inv.internet_gateways.push(InternetGateway {
            id: g.internet_gateway_id,
            vpcs: g.attachments.into_iter().map(|a| a.vpc_id).collect(),
        });
    }
    inv.nat_gateways = aws
        .nat_gateways
        .into_iter()
        .map(|n| n.nat_gateway_id)
        .collect();
    for db in aws.db_instances {
        let subnets = db.db_subnet_group.map(|g| g.subnets).unwrap_or_default();
        // The instance sits in the subnet of its availability zone; the others are standbys.
        let subnet = subnets
            .iter()
            .find(|s| {
                s.subnet_availability_zone.as_ref().map(|a| &a.name)
                    == db.availability_zone.as_ref()
            })
            .or(subnets.first())
            .map(|s| s.subnet_identifier.clone());
        let Some(subnet) = subnet else {
            notes.push(warn(
                db.db_instance_identifier.to_string(),
                "database without a subnet group skipped".to_owned(),
            ));
            continue;
        };
        let port = db.endpoint.and_then(|e| e.port);
        let dtags = tags(db.tag_list);
        inv.endpoints.push(Endpoint {
            id: db.db_instance_identifier,
            kind: EndpointKind::Database,
            instance: None,
            name: dtags.value("Name").map(str::to_owned),
            subnet,
            address: None,
            public_address: None,
            public: db.publicly_accessible,
            groups: db
                .vpc_security_groups
                .into_iter()
                .map(|g| g.vpc_security_group_id)
                .collect(),
            listening: port.map(|p| TrafficSet::tcp(PortRange::single(p))),
            tags: dtags,
        });
    }
    inv.notes = notes;
    inv
}

fn tags(raw: Vec<AwsTag>) -> Tags {
    Tags(raw.into_iter().map(|t| (t.key, t.value)).collect())
}

fn route_target(r: &AwsRoute) -> RouteTarget {
    let id = |s: &str| GatewayId::parse(s).ok();
    if r.state.as_deref() == Some("blackhole") {
        return RouteTarget::Other("blackhole".to_owned());
    }
    if let Some(p) = r
        .vpc_peering_connection_id
        .as_deref()
        .and_then(|p| PeeringId::parse(p).ok())
    {
        return RouteTarget::Peering(p);
    }
    if let Some(n) = r.nat_gateway_id.as_deref().and_then(id) {
        return RouteTarget::Nat(n);
    }
    if let Some(t) = r.transit_gateway_id.as_deref().and_then(id) {
        return RouteTarget::Transit(t);
    }
    match r.gateway_id.as_deref() {
        Some("local") => RouteTarget::Local,
        Some(g) if g.starts_with("igw-") => {
            id(g).map_or(RouteTarget::Other(g.to_owned()), RouteTarget::Internet)
        }
        Some(g) => RouteTarget::Other(g.to_owned()),
        None => RouteTarget::Other(
            r.instance_id
                .clone()
                .or_else(|| r.network_interface_id.clone())
                .or_else(|| r.egress_only_internet_gateway_id.clone())
                .unwrap_or_else(|| "unknown target".to_owned()),
        ),
    }
}

fn permissions(
    perms: &[AwsPermission],
    group: &GroupId,
    file: &str,
    notes: &mut Vec<Finding>,
) -> Vec<GroupRule> {
    let mut out = Vec::new();
    for p in perms {
        let ports = if p.ip_protocol.has_ports() {
            match (p.from_port, p.to_port) {
                (Some(f), Some(t)) => match PortRange::new(f, t) {
                    Ok(r) => r,
                    Err(bad) => {
                        notes.push(
                            Finding::new(
                                rules::DANGLING_REFERENCE,
                                None,
                                Severity::Warning,
                                group.to_string(),
                                format!("rule skipped: {bad}"),
                            )
                            .in_file(file),
                        );
                        continue;
                    }
                },
                _ => PortRange::all(),
            }
        } else {
            PortRange::all()
        };
        let traffic = TrafficSet::of(p.ip_protocol, ports);
        let peers = p
            .ip_ranges
            .iter()
            .map(|r| RulePeer::Cidr(r.cidr_ip))
            .chain(p.ipv6_ranges.iter().map(|r| RulePeer::Cidr(r.cidr_ipv6)))
            .chain(
                p.prefix_list_ids
                    .iter()
                    .map(|r| RulePeer::PrefixList(r.prefix_list_id.clone())),
            )
            .chain(
                p.user_id_group_pairs
                    .iter()
                    .map(|r| RulePeer::Group(r.group_id.clone())),
            );
        out.extend(peers.map(|peer| GroupRule {
            peer,
            traffic: traffic.clone(),
        }));
    }
    out
}

fn peer_side(info: AwsPeerInfo) -> PeerSide {
    let mut cidrs: Vec<Cidr> = info.cidr_block.into_iter().collect();
    for a in info.cidr_block_set.iter().chain(&info.ipv6_cidr_block_set) {
        cidrs.extend(a.cidr_block.iter().chain(&a.ipv6_cidr_block));
    }
    cidrs.sort();
    cidrs.dedup();
    PeerSide {
        vpc: info.vpc_id,
        cidrs,
        owner: info.owner_id,
    }
}

fn interface(eni: AwsInterface) -> Option<Endpoint> {
    let public_address = eni.association.and_then(|a| a.public_ip);
    let itags = tags(eni.tag_set);
    Some(Endpoint {
        id: eni.network_interface_id,
        kind: EndpointKind::Interface,
        instance: eni.attachment.and_then(|a| a.instance_id),
        name: itags.value("Name").map(str::to_owned),
        subnet: eni.subnet_id?,
        address: eni.private_ip_address,
        public_address,
        public: public_address.is_some(),
        groups: eni.groups.into_iter().map(|g| g.group_id).collect(),
        listening: None,
        tags: itags,
    })
}
