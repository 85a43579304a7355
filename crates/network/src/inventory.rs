//! The inventory: networks, subnets, routes, ACLs, security groups, endpoints and peerings,
//! as every importer produces them. References are still ids here; [`crate::engine`]
//! resolves them and reports the dangling ones.

use std::net::IpAddr;

use crate::addr::Cidr;
use crate::finding::Finding;
use crate::ident::{
    EndpointId, GatewayId, GroupId, NaclId, PeeringId, RouteTableId, SubnetId, VpcId,
};
use crate::traffic::TrafficSet;

/// Everything read from an inventory directory.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// VPCs (and networks of rampart's TOML).
    pub vpcs: Vec<Vpc>,
    /// Subnets.
    pub subnets: Vec<Subnet>,
    /// Route tables with their routes and associations.
    pub route_tables: Vec<RouteTable>,
    /// Network ACLs with their entries and associations.
    pub nacls: Vec<Nacl>,
    /// Security groups with their rules.
    pub groups: Vec<SecurityGroup>,
    /// Interfaces, databases and hosts.
    pub endpoints: Vec<Endpoint>,
    /// Peering connections.
    pub peerings: Vec<Peering>,
    /// Internet gateways and the VPCs they are attached to.
    pub internet_gateways: Vec<InternetGateway>,
    /// NAT gateway ids (route targets for egress to the internet).
    pub nat_gateways: Vec<GatewayId>,
    /// Doubts found while importing, such as values unknown until apply.
    pub notes: Vec<Finding>,
    /// The files read, in order.
    pub files: Vec<String>,
}

impl Inventory {
    /// Whether nothing the checks could use was found.
    pub fn is_empty(&self) -> bool {
        self.vpcs.is_empty()
            && self.subnets.is_empty()
            && self.groups.is_empty()
            && self.endpoints.is_empty()
            && self.peerings.is_empty()
    }

    /// Appends another inventory (another region, account or file).
    pub fn merge(&mut self, other: Inventory) {
        self.vpcs.extend(other.vpcs);
        self.subnets.extend(other.subnets);
        self.route_tables.extend(other.route_tables);
        self.nacls.extend(other.nacls);
        self.groups.extend(other.groups);
        self.endpoints.extend(other.endpoints);
        self.peerings.extend(other.peerings);
        self.internet_gateways.extend(other.internet_gateways);
        self.nat_gateways.extend(other.nat_gateways);
        self.notes.extend(other.notes);
        self.files.extend(other.files);
    }
}

/// Key/value tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(pub Vec<(String, String)>);

impl Tags {
    /// The value of a tag, compared case-insensitively on the key.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// A VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    /// Its id.
    pub id: VpcId,
    /// Its address blocks (primary first).
    pub cidrs: Vec<Cidr>,
    /// Its tags.
    pub tags: Tags,
    /// The owning account, where known.
    pub owner: Option<String>,
    /// The environment the source itself declares (rampart TOML); config mapping wins.
    pub environment: Option<String>,
}

/// A subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// Its id.
    pub id: SubnetId,
    /// The VPC it belongs to.
    pub vpc: VpcId,
    /// Its address blocks.
    pub cidrs: Vec<Cidr>,
    /// Its tags.
    pub tags: Tags,
}

/// A route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    /// Its id.
    pub id: RouteTableId,
    /// The VPC it belongs to.
    pub vpc: VpcId,
    /// Its routes.
    pub routes: Vec<Route>,
    /// Subnets explicitly associated with it.
    pub subnets: Vec<SubnetId>,
    /// Whether it is the VPC's main table (used by subnets without an association).
    pub main: bool,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination block.
    pub destination: Cidr,
    /// Where matching traffic goes.
    pub target: RouteTarget,
}

/// Where a route sends traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// Inside the VPC.
    Local,
    /// An internet gateway (`igw-…`).
    Internet(GatewayId),
    /// A NAT gateway (`nat-…`): egress only.
    Nat(GatewayId),
    /// A VPC peering connection.
    Peering(PeeringId),
    /// A transit gateway: not modelled, reported.
    Transit(GatewayId),
    /// Anything else (endpoints, appliances, black holes): traffic goes nowhere we model.
    Other(String),
}

/// A network ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nacl {
    /// Its id.
    pub id: NaclId,
    /// The VPC it belongs to.
    pub vpc: VpcId,
    /// Its entries, in any order (evaluation sorts by rule number).
    pub entries: Vec<NaclEntry>,
    /// Subnets associated with it.
    pub subnets: Vec<SubnetId>,
    /// Whether it is the VPC's default ACL (used by subnets without an association).
    pub default: bool,
}

/// One network ACL entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaclEntry {
    /// Rule number; lower is evaluated first. 32767 is the final `*` deny.
    pub number: u32,
    /// Whether it applies to outbound traffic.
    pub egress: bool,
    /// Allow or deny.
    pub allow: bool,
    /// The remote block (source for inbound, destination for outbound).
    pub cidr: Cidr,
    /// The traffic it matches.
    pub traffic: TrafficSet,
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    /// Its id.
    pub id: GroupId,
    /// Its VPC, where known.
    pub vpc: Option<VpcId>,
    /// Its name (`default` for the VPC's default group).
    pub name: String,
    /// Inbound rules.
    pub ingress: Vec<GroupRule>,
    /// Outbound rules.
    pub egress: Vec<GroupRule>,
}

/// One security group rule: traffic to or from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRule {
    /// The remote side.
    pub peer: RulePeer,
    /// The traffic it admits.
    pub traffic: TrafficSet,
}

/// The remote side of a security group rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulePeer {
    /// An address block.
    Cidr(Cidr),
    /// Members of a security group.
    Group(GroupId),
    /// A managed prefix list, resolved from the configuration.
    PrefixList(String),
}

/// What kind of thing an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    /// A network interface (of an instance, a load balancer…).
    Interface,
    /// A managed database.
    Database,
    /// A host of rampart's TOML.
    Host,
}

/// Something that sends and receives traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its id (ENI id, database id, host name).
    pub id: EndpointId,
    /// What it is.
    pub kind: EndpointKind,
    /// The instance it is attached to, where known.
    pub instance: Option<EndpointId>,
    /// A human name (the `Name` tag).
    pub name: Option<String>,
    /// Its subnet.
    pub subnet: SubnetId,
    /// Its private address; `None` for a database whose address the inventory omits
    /// (it then stands for its whole subnet).
    pub address: Option<IpAddr>,
    /// Its public address, if the inventory knows it.
    pub public_address: Option<IpAddr>,
    /// Whether it has a public address at all (a public database's address is not listed).
    pub public: bool,
    /// Its security groups.
    pub groups: Vec<GroupId>,
    /// The traffic it accepts (a database listens on one port); `None` means anything.
    pub listening: Option<TrafficSet>,
    /// Its tags (or its instance's).
    pub tags: Tags,
}

/// A VPC peering connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peering {
    /// Its id.
    pub id: PeeringId,
    /// The side that asked.
    pub requester: PeerSide,
    /// The side that accepted.
    pub accepter: PeerSide,
    /// Whether it carries traffic (`active`).
    pub active: bool,
}

/// One side of a peering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSide {
    /// The VPC.
    pub vpc: VpcId,
    /// The VPC's blocks as the peering reports them.
    pub cidrs: Vec<Cidr>,
    /// The owning account.
    pub owner: Option<String>,
}

/// An internet gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternetGateway {
    /// Its id.
    pub id: GatewayId,
    /// The VPCs it is attached to.
    pub vpcs: Vec<VpcId>,
}
