//! Identifiers of inventory resources, one newtype per kind so a subnet id can never be
//! passed where a security group id is meant.
//!
//! Ids are opaque: AWS ids (`vpc-0abc…`), Terraform addresses (`aws_vpc.staging`) for
//! resources whose id is unknown until apply, and names from rampart's TOML all fit.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An id that is empty, longer than 256 bytes or holds control characters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a resource id: {0:?}")]
pub struct BadId(pub String);

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses an id: 1 to 256 bytes, no control characters, surrounding space removed.
            pub fn parse(raw: &str) -> Result<Self, BadId> {
                let id = raw.trim();
                if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
                    Err(BadId(raw.to_owned()))
                } else {
                    Ok(Self(id.to_owned()))
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    )*};
}

ids! {
    /// A VPC (or a network of rampart's TOML).
    VpcId;
    /// A subnet.
    SubnetId;
    /// A route table.
    RouteTableId;
    /// A network ACL.
    NaclId;
    /// A security group (or the firewall of a TOML host).
    GroupId;
    /// A VPC peering connection (or a link of rampart's TOML).
    PeeringId;
    /// Something that sends or receives traffic: a network interface, an instance, a
    /// database, a TOML host.
    EndpointId;
    /// An internet, NAT or transit gateway, or another route target.
    GatewayId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_trimmed_and_must_be_printable() {
        assert_eq!(VpcId::parse(" vpc-1 ").map(|v| v.0), Ok("vpc-1".to_owned()));
        assert!(VpcId::parse("").is_err());
        assert!(GroupId::parse("sg-\u{7}").is_err());
    }
}
