//! Generates a large AWS CLI inventory for `bench/network.sh`:
//! 1,000 VPCs in three environments, 10,000 security groups with 100,000 rules, 50,000
//! interfaces, hub-and-spoke peerings inside each environment, a handful of cross-environment
//! peerings (NET-2 violations), a database provider peered with production, and a
//! `network.toml` that declares all of it.
//!
//! Usage: `cargo run --release --example gen_inventory -- OUT_DIR [VPCS]`

use std::error::Error;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::{Value, json};

const ENVS: [&str; 3] = ["production", "staging", "tests"];
const GROUPS_PER_VPC: usize = 10;
const RULES_PER_GROUP: usize = 10;
const ENIS_PER_VPC: usize = 50;
const CROSS_ENV_PEERINGS: usize = 5;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or("usage: gen_inventory OUT_DIR [VPCS]")?;
    let vpcs: usize = args.next().map(|v| v.parse()).transpose()?.unwrap_or(1000);
    let out = Path::new(&out);
    std::fs::create_dir_all(out)?;
    let mut rng = Lcg(0x5eed);

    // VPC i owns 10.(i/16).((i%16)*16).0/20; subnet k of it is the k-th /24.
    let cidr = |i: usize| format!("10.{}.{}.0/20", i / 16, (i % 16) * 16);
    let subnet_cidr = |i: usize, k: usize| format!("10.{}.{}.0/24", i / 16, (i % 16) * 16 + k);
    let env_of = |i: usize| ENVS.get(i % 3).copied().unwrap_or("tests");
    let hub_of = |i: usize| i % 3; // VPCs 0, 1 and 2 are the hubs of their environment.

    let mut vpc_list = Vec::new();
    let mut subnets = Vec::new();
    let mut groups = Vec::new();
    let mut enis = Vec::new();
    let mut tables = Vec::new();
    let mut acls = Vec::new();
    let mut igws = Vec::new();
    let mut peerings = Vec::new();
    let mut declared = Vec::new();
    let mut provider_peerings = Vec::new();

    for i in 0..vpcs {
        let env = env_of(i);
        vpc_list.push(json!({"VpcId": format!("vpc-{i:05}"), "CidrBlock": cidr(i), "OwnerId": "111111111111", "State": "available",
            "Tags": [{"Key": "Environment", "Value": env}, {"Key": "Name", "Value": format!("{env}-{i}")}]}));
        for k in 0..2 {
            subnets.push(json!({"SubnetId": format!("subnet-{i:05}-{k}"), "VpcId": format!("vpc-{i:05}"), "CidrBlock": subnet_cidr(i, k),
                "Tags": [{"Key": "Environment", "Value": env}]}));
        }
        let mut routes = vec![
            json!({"DestinationCidrBlock": cidr(i), "GatewayId": "local", "State": "active"}),
            json!({"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": format!("igw-{i:05}"), "State": "active"}),
        ];
        // Hub and spoke inside the environment.
        let hub = hub_of(i);
        if i != hub && hub < vpcs {
            let id = format!("pcx-h{i:05}");
            peerings.push(peering(&id, i, hub, &cidr));
            declared.push(id.clone());
            routes.push(json!({"DestinationCidrBlock": cidr(hub), "VpcPeeringConnectionId": id, "State": "active"}));
        }
        if i < 3 {
            for spoke in (i + 3..vpcs).step_by(3) {
                routes.push(json!({"DestinationCidrBlock": cidr(spoke), "VpcPeeringConnectionId": format!("pcx-h{spoke:05}"), "State": "active"}));
            }
        }
        // A few production-staging peerings with open routes: NET-2 violations to find.
        if (3..3 + 3 * CROSS_ENV_PEERINGS).contains(&i) && i % 3 == 0 {
            let other = i + 1;
            let id = format!("pcx-x{i:05}");
            peerings.push(peering(&id, i, other, &cidr));
            declared.push(id.clone());
            routes.push(json!({"DestinationCidrBlock": cidr(other), "VpcPeeringConnectionId": id, "State": "active"}));
        }
        if (4..4 + 3 * CROSS_ENV_PEERINGS).contains(&i) && i % 3 == 1 {
            let other = i - 1;
            routes.push(json!({"DestinationCidrBlock": cidr(other), "VpcPeeringConnectionId": format!("pcx-x{other:05}"), "State": "active"}));
        }
        // Production reaches the database provider.
        if env == "production" {
            let id = format!("pcx-db{i:05}");
            peerings.push(json!({"VpcPeeringConnectionId": id, "Status": {"Code": "active"},
                "RequesterVpcInfo": {"VpcId": format!("vpc-{i:05}"), "CidrBlock": cidr(i), "OwnerId": "111111111111"},
                "AccepterVpcInfo": {"VpcId": "vpc-dbprovider", "CidrBlock": "10.250.0.0/16", "OwnerId": "999999999999"}}));
            provider_peerings.push(id.clone());
            routes.push(json!({"DestinationCidrBlock": "10.250.0.0/16", "VpcPeeringConnectionId": id, "State": "active"}));
        }
        tables.push(json!({"RouteTableId": format!("rtb-{i:05}"), "VpcId": format!("vpc-{i:05}"), "Routes": routes,
            "Associations": [{"Main": true}, {"Main": false, "SubnetId": format!("subnet-{i:05}-0")}, {"Main": false, "SubnetId": format!("subnet-{i:05}-1")}]}));
        acls.push(json!({"NetworkAclId": format!("acl-{i:05}"), "VpcId": format!("vpc-{i:05}"), "IsDefault": true,
            "Associations": [{"SubnetId": format!("subnet-{i:05}-0")}, {"SubnetId": format!("subnet-{i:05}-1")}],
            "Entries": [
                {"RuleNumber": 50, "Protocol": "6", "RuleAction": "allow", "Egress": false, "CidrBlock": "10.250.0.0/16", "PortRange": {"From": 1024, "To": 65535}},
                {"RuleNumber": 60, "Protocol": "-1", "RuleAction": "deny", "Egress": false, "CidrBlock": "10.250.0.0/16"},
                {"RuleNumber": 90, "Protocol": "6", "RuleAction": "deny", "Egress": false, "CidrBlock": "0.0.0.0/0", "PortRange": {"From": 22, "To": 22}},
                {"RuleNumber": 91, "Protocol": "6", "RuleAction": "deny", "Egress": false, "CidrBlock": "0.0.0.0/0", "PortRange": {"From": 3389, "To": 3389}},
                {"RuleNumber": 100, "Protocol": "-1", "RuleAction": "allow", "Egress": false, "CidrBlock": "0.0.0.0/0"},
                {"RuleNumber": 32767, "Protocol": "-1", "RuleAction": "deny", "Egress": false, "CidrBlock": "0.0.0.0/0"},
                {"RuleNumber": 100, "Protocol": "-1", "RuleAction": "allow", "Egress": true, "CidrBlock": "0.0.0.0/0"},
                {"RuleNumber": 32767, "Protocol": "-1", "RuleAction": "deny", "Egress": true, "CidrBlock": "0.0.0.0/0"}]}));
        igws.push(json!({"InternetGatewayId": format!("igw-{i:05}"), "Attachments": [{"State": "available", "VpcId": format!("vpc-{i:05}")}]}));

        for g in 0..GROUPS_PER_VPC {
            let gid = format!("sg-{i:05}-{g}");
            let mut ingress = Vec::new();
            for r in 0..RULES_PER_GROUP - 2 {
                // Application ports above every administrative port of the default list.
                let port = 12000 + rng.below(8000) as u16;
                let rule = match (g, r) {
                    (0, 0) => perm("tcp", 443, 443, json!([{"CidrIp": "0.0.0.0/0"}]), json!([])), // the front door
                    (1, 0) if i % 20 == 0 => {
                        perm("tcp", 22, 22, json!([{"CidrIp": "10.0.0.0/8"}]), json!([]))
                    } // ACC-5
                    (_, 0) => perm("tcp", 22, 22, json!([]), json!([{"GroupId": "sg-00000-9"}])), // the gateway
                    // The application group (6) reaches the database group (5): a declared service flow.
                    (5, 1) => perm(
                        "tcp",
                        5432,
                        5432,
                        json!([]),
                        json!([{"GroupId": format!("sg-{i:05}-6")}]),
                    ),
                    (_, 2) if i % 3 == 0 && i < 3 + 3 * CROSS_ENV_PEERINGS => {
                        perm("-1", 0, 0, json!([{"CidrIp": "10.0.0.0/8"}]), json!([]))
                    }
                    _ => perm(
                        "tcp",
                        port,
                        port + rng.below(10) as u16,
                        json!([{"CidrIp": cidr(i)}]),
                        json!([]),
                    ),
                };
                ingress.push(rule);
            }
            let egress = vec![
                perm("-1", 0, 0, json!([{"CidrIp": "0.0.0.0/0"}]), json!([])),
                perm(
                    "tcp",
                    5432,
                    5432,
                    json!([{"CidrIp": "10.250.0.0/16"}]),
                    json!([]),
                ),
            ];
            groups.push(json!({"GroupId": gid, "GroupName": format!("group-{g}"), "VpcId": format!("vpc-{i:05}"), "IpPermissions": ingress, "IpPermissionsEgress": egress}));
        }
        for e in 0..ENIS_PER_VPC {
            let k = e % 2;
            let ip = format!("10.{}.{}.{}", i / 16, (i % 16) * 16 + k, 10 + e);
            let g1 = rng.below(GROUPS_PER_VPC as u64);
            let g2 = (g1 + 1 + rng.below(GROUPS_PER_VPC as u64 - 1)) % GROUPS_PER_VPC as u64;
            let mut eni = json!({"NetworkInterfaceId": format!("eni-{i:05}-{e:02}"), "SubnetId": format!("subnet-{i:05}-{k}"), "VpcId": format!("vpc-{i:05}"),
                "PrivateIpAddress": ip, "Groups": [{"GroupId": format!("sg-{i:05}-{g1}")}, {"GroupId": format!("sg-{i:05}-{g2}")}],
                "Attachment": {"InstanceId": format!("i-{i:05}-{e:02}")}, "TagSet": [{"Key": "Name", "Value": format!("host-{i}-{e}")}]});
            if e == 0
                && let Some(obj) = eni.as_object_mut()
            {
                obj.insert(
                    "Association".into(),
                    json!({"PublicIp": format!("198.18.{}.{}", i / 250, i % 250 + 1)}),
                );
                obj.insert(
                    "Groups".into(),
                    json!([{"GroupId": format!("sg-{i:05}-0")}]),
                );
            }
            enis.push(eni);
        }
    }

    write(out, "vpcs.json", json!({"Vpcs": vpc_list}))?;
    write(out, "subnets.json", json!({"Subnets": subnets}))?;
    write(
        out,
        "security-groups.json",
        json!({"SecurityGroups": groups}),
    )?;
    write(
        out,
        "network-interfaces.json",
        json!({"NetworkInterfaces": enis}),
    )?;
    write(out, "route-tables.json", json!({"RouteTables": tables}))?;
    write(out, "network-acls.json", json!({"NetworkAcls": acls}))?;
    write(
        out,
        "internet-gateways.json",
        json!({"InternetGateways": igws}),
    )?;
    write(
        out,
        "vpc-peering-connections.json",
        json!({"VpcPeeringConnections": peerings}),
    )?;

    let front: Vec<String> = (0..vpcs).map(|i| format!("\"sg-{i:05}-0\"")).collect();
    let mut toml = BufWriter::new(File::create(out.join("network.toml"))?);
    writeln!(
        toml,
        "peerings = [{}]",
        declared
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(toml, "\n[gateway]\nsecurity_groups = [\"sg-00000-9\"]\n")?;
    writeln!(
        toml,
        "[internet]\nfront_door = [{}]\nports = [443]\n",
        front.join(", ")
    )?;
    let apps: Vec<String> = (0..vpcs).map(|i| format!("\"sg-{i:05}-6\"")).collect();
    let dbs: Vec<String> = (0..vpcs).map(|i| format!("\"sg-{i:05}-5\"")).collect();
    writeln!(
        toml,
        "[[service_flows]]\nfrom = [{}]\nto = [{}]\nports = [5432]\n",
        apps.join(", "),
        dbs.join(", ")
    )?;
    writeln!(
        toml,
        "[[providers]]\nname = \"dbprovider\"\ncidrs = [\"10.250.0.0/16\"]\nports = [5432]"
    )?;
    writeln!(
        toml,
        "peerings = [{}]",
        provider_peerings
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    toml.flush()?;
    Ok(())
}

fn peering(id: &str, a: usize, b: usize, cidr: &dyn Fn(usize) -> String) -> Value {
    json!({"VpcPeeringConnectionId": id, "Status": {"Code": "active"},
        "RequesterVpcInfo": {"VpcId": format!("vpc-{a:05}"), "CidrBlock": cidr(a), "OwnerId": "111111111111"},
        "AccepterVpcInfo": {"VpcId": format!("vpc-{b:05}"), "CidrBlock": cidr(b), "OwnerId": "111111111111"}})
}

fn perm(proto: &str, from: u16, to: u16, ranges: Value, pairs: Value) -> Value {
    json!({"IpProtocol": proto, "FromPort": from, "ToPort": to, "IpRanges": ranges, "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": pairs})
}

fn write(dir: &Path, name: &str, value: Value) -> Result<(), Box<dyn Error>> {
    let mut w = BufWriter::new(File::create(dir.join(name))?);
    serde_json::to_writer(&mut w, &value)?;
    w.flush()?;
    Ok(())
}

/// A small deterministic generator, so every run benchmarks the same inventory.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}
