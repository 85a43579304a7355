//! [`NetworkConfig`]: the `[network]` section of `rampart.toml`, or a `network.toml` file
//! that `rampart net` reads beside the inventory.
//!
//! Every field has a default, so an empty section is valid; unknown keys are rejected so a
//! typo never silently weakens a check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rampart_core::Environment;
use serde::Deserialize;

use crate::addr::Cidr;
use crate::ident::{GroupId, PeeringId};

/// What the network checks need to know that the inventory cannot say.
///
/// ```toml
/// [network]
/// inventory = "/var/lib/rampart/inventory"
/// environment_tag = "Environment"
/// peerings = ["pcx-0aa11"]                 # peerings that may exist between our VPCs
///
/// [network.environments]                   # wins over tags
/// production = ["vpc-0prod", "10.10.0.0/16"]
///
/// [[network.providers]]
/// name = "dbprovider"
/// cidrs = ["10.200.0.0/16"]
/// peerings = ["pcx-0db01"]
/// ports = [5432]
///
/// [network.gateway]
/// addresses = ["10.10.0.10"]
/// security_groups = ["sg-0gateway"]
///
/// [[network.service_flows]]               # an app reaching its database is not admin access
/// from = ["sg-0app"]
/// to = ["sg-0db"]
/// ports = [5432]
///
/// [network.internet]
/// front_door = ["sg-0alb"]                 # resources allowed to be public
/// ports = [80, 443]
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Directory holding the inventory (AWS CLI JSON, Terraform plan JSON, rampart TOML);
    /// the command line's `DIR` wins over it.
    pub inventory: Option<PathBuf>,
    /// The tag whose value names a VPC's environment. Default `Environment`.
    pub environment_tag: String,
    /// Environments by VPC id or CIDR block; a VPC matched here ignores its tag.
    pub environments: BTreeMap<Environment, Vec<String>>,
    /// Peering ids that may exist between our own VPCs (NET-1). Provider peerings are
    /// declared with their provider.
    pub peerings: Vec<PeeringId>,
    /// External parties reached through a peering, such as the database provider (EXT-2).
    pub providers: Vec<Provider>,
    /// The access gateway: the only source allowed on administrative ports (ACC-5).
    pub gateway: Gateway,
    /// What may be reached from the internet (NET-3, ACC-4).
    pub internet: InternetAllow,
    /// Administrative ports (TCP) that only the gateway may reach.
    pub admin_ports: Vec<u16>,
    /// Application flows allowed to use an administrative port without the gateway, such as
    /// an application server reaching its database on 5432 (ACC-5).
    pub service_flows: Vec<ServiceFlow>,
    /// Contents of managed prefix lists referenced by security groups (`pl-…` → CIDRs);
    /// a rule naming a prefix list not listed here is reported and not matched.
    pub prefix_lists: BTreeMap<String, Vec<Cidr>>,
    /// Ports clients use for their side of a connection, which stateless network ACLs
    /// must let back in. Default 1024–65535.
    pub ephemeral_ports: [u16; 2],
}

/// An external party, such as the managed database provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// A short name used in findings and in the matrix.
    pub name: String,
    /// The provider's address blocks.
    pub cidrs: Vec<Cidr>,
    /// The peering connections between our VPCs and the provider.
    #[serde(default)]
    pub peerings: Vec<PeeringId>,
    /// The ports our environments must reach on the provider (TCP). Default 5432.
    #[serde(default = "default_provider_ports")]
    pub ports: Vec<u16>,
}

/// An application flow on administrative ports that is not an administrator's access.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFlow {
    /// Sources: security group, interface, instance or database ids, `Name` tags, or CIDRs.
    pub from: Vec<String>,
    /// Destinations, named the same way.
    pub to: Vec<String>,
    /// The TCP ports of the flow.
    pub ports: Vec<u16>,
}

/// The access gateway, by address or security group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gateway {
    /// Addresses (or blocks) of the gateway.
    pub addresses: Vec<Cidr>,
    /// Security groups whose members are the gateway.
    pub security_groups: Vec<GroupId>,
}

/// The internet allow-list: the front door and its ports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InternetAllow {
    /// Resources that may be reached from the internet: security group, interface,
    /// instance or database ids, or public addresses.
    pub front_door: Vec<String>,
    /// TCP ports the front door may expose. Default 80 and 443.
    pub ports: Vec<u16>,
}

/// A config file that cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid network config.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key.
        message: String,
    },
}

impl NetworkConfig {
    /// Parses TOML that is either a whole `rampart.toml` (its `[network]` table is used) or a
    /// `network.toml` holding the fields at top level.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        let table: toml::Table = toml::from_str(text)?;
        match table.get("network") {
            Some(toml::Value::Table(section)) => section.clone().try_into(),
            _ => table.try_into(),
        }
    }

    /// Reads a config file (see [`NetworkConfig::from_toml`]).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// The ephemeral port range, ends in order.
    pub(crate) fn ephemeral(&self) -> crate::traffic::PortRange {
        let [a, b] = self.ephemeral_ports;
        crate::traffic::PortRange::new(i64::from(a.min(b)), i64::from(a.max(b)))
            .unwrap_or_else(|_| crate::traffic::PortRange::all())
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            inventory: None,
            environment_tag: "Environment".to_owned(),
            environments: BTreeMap::new(),
            peerings: Vec::new(),
            providers: Vec::new(),
            gateway: Gateway::default(),
            internet: InternetAllow::default(),
            // SSH, RDP, databases, caches, search, WinRM, Docker, etcd, telnet.
            admin_ports: vec![
                22, 23, 3389, 5432, 3306, 1433, 1521, 6379, 27017, 9200, 5985, 5986, 2375, 2379,
                11211,
            ],
            service_flows: Vec::new(),
            prefix_lists: BTreeMap::new(),
            ephemeral_ports: [1024, 65535],
        }
    }
}

impl Default for InternetAllow {
    fn default() -> Self {
        Self {
            front_door: Vec::new(),
            ports: vec![80, 443],
        }
    }
}

fn default_provider_ports() -> Vec<u16> {
    vec![5432]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_config_has_documented_defaults() {
        let c = NetworkConfig::from_toml("").unwrap();
        assert_eq!(c.environment_tag, "Environment");
        assert_eq!(c.internet.ports, vec![80, 443]);
        assert!(c.admin_ports.contains(&22));
    }

    #[test]
    fn network_section_of_rampart_toml_is_used() {
        let c = NetworkConfig::from_toml(
            "[other]\nx = 1\n[network]\nenvironment_tag = \"env\"\n[[network.providers]]\nname = \"db\"\ncidrs = [\"10.200.0.0/16\"]\n",
        )
        .unwrap();
        assert_eq!(c.environment_tag, "env");
        assert_eq!(
            c.providers.first().map(|p| p.ports.clone()),
            Some(vec![5432])
        );
    }

    #[test]
    fn unknown_keys_and_bad_cidrs_are_rejected() {
        assert!(NetworkConfig::from_toml("environmnet_tag = \"x\"").is_err());
        assert!(NetworkConfig::from_toml("[gateway]\naddresses = [\"10.0.0.300\"]").is_err());
    }
}
