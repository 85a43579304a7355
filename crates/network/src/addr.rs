//! Addresses: the [`Cidr`] newtype and [`AddrSet`], IPv4 and IPv6 interval sets.
//!
//! Rules, routes and ACL entries name CIDRs; the engine turns them into interval sets so
//! "which part of the internet may reach this port" is arithmetic, not enumeration.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv4Subnets, Ipv6Net, Ipv6Subnets};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::interval::IntervalSet;

/// A CIDR block such as `10.0.0.0/16`, normalized (host bits cleared). A bare address
/// parses as a host route (`/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(IpNet);

/// Text that is not a CIDR block or an address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a CIDR block or IP address: {0:?}")]
pub struct BadCidr(pub String);

impl Cidr {
    /// Parses `10.0.0.0/16`, `2001:db8::/32` or a bare address.
    pub fn parse(raw: &str) -> Result<Self, BadCidr> {
        let raw = raw.trim();
        if let Ok(net) = raw.parse::<IpNet>() {
            return Ok(Self(net.trunc()));
        }
        raw.parse::<IpAddr>()
            .map(|ip| Self(IpNet::from(ip)))
            .map_err(|_| BadCidr(raw.to_owned()))
    }

    /// The host route of one address.
    pub fn host(ip: IpAddr) -> Self {
        Self(IpNet::from(ip))
    }

    /// The underlying network.
    pub fn net(self) -> IpNet {
        self.0
    }

    /// The prefix length; longer is more specific.
    pub fn prefix_len(self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether the address lies in the block. Prefix arithmetic on the normalized network:
    /// this is the innermost test of every evaluation.
    pub fn contains(self, ip: IpAddr) -> bool {
        match (self.0, ip) {
            (IpNet::V4(n), IpAddr::V4(a)) => {
                let len = u32::from(n.prefix_len());
                len == 0 || (u32::from(a) ^ u32::from(n.addr())).checked_shr(32 - len) == Some(0)
            }
            (IpNet::V6(n), IpAddr::V6(a)) => {
                let len = u32::from(n.prefix_len());
                len == 0 || (u128::from(a) ^ u128::from(n.addr())).checked_shr(128 - len) == Some(0)
            }
            _ => false,
        }
    }

    /// Whether every address of `other` lies in this block.
    pub fn covers(self, other: Cidr) -> bool {
        self.0.contains(&other.0)
    }

    /// Whether the block is `0.0.0.0/0` or `::/0`.
    pub fn is_any(self) -> bool {
        self.0.prefix_len() == 0
    }

    /// The block as a set of addresses.
    pub fn to_set(self) -> AddrSet {
        match self.0 {
            IpNet::V4(n) => AddrSet {
                v4: IntervalSet::range(u32::from(n.network()), u32::from(n.broadcast())),
                v6: IntervalSet::empty(),
            },
            IpNet::V6(n) => AddrSet {
                v4: IntervalSet::empty(),
                v6: IntervalSet::range(u128::from(n.network()), u128::from(n.broadcast())),
            },
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Cidr::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A set of IPv4 and IPv6 addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddrSet {
    v4: IntervalSet<u32>,
    v6: IntervalSet<u128>,
}

impl AddrSet {
    /// No address.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every address.
    pub fn any() -> Self {
        Self {
            v4: IntervalSet::full(),
            v6: IntervalSet::full(),
        }
    }

    /// One address.
    pub fn single(ip: IpAddr) -> Self {
        Cidr::host(ip).to_set()
    }

    /// The union of some blocks.
    pub fn of(cidrs: impl IntoIterator<Item = Cidr>) -> Self {
        cidrs
            .into_iter()
            .fold(Self::empty(), |acc, c| acc.union(&c.to_set()))
    }

    /// The public internet: every address outside the private, shared, loopback, link-local
    /// and multicast ranges (RFC 1918, 6598, 4193 and friends). A rule naming any of these
    /// admits some of the internet.
    pub fn internet() -> Self {
        let reserved = [
            "0.0.0.0/8",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "224.0.0.0/3",
            "::/8",
            "fc00::/7",
            "fe80::/10",
            "ff00::/8",
        ];
        let reserved = Self::of(reserved.iter().filter_map(|r| Cidr::parse(r).ok()));
        Self::any().difference(&reserved)
    }

    /// Whether there is no address.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether the address is in the set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }

    /// Whether every address of `other` is in the set.
    pub fn covers(&self, other: &Self) -> bool {
        self.v4.covers(&other.v4) && self.v6.covers(&other.v6)
    }

    /// Whether the sets share an address.
    pub fn intersects(&self, other: &Self) -> bool {
        self.v4.intersects(&other.v4) || self.v6.intersects(&other.v6)
    }

    /// Addresses in either set.
    pub fn union(&self, other: &Self) -> Self {
        Self {
            v4: self.v4.union(&other.v4),
            v6: self.v6.union(&other.v6),
        }
    }

    /// Addresses in both sets.
    pub fn intersection(&self, other: &Self) -> Self {
        Self {
            v4: self.v4.intersection(&other.v4),
            v6: self.v6.intersection(&other.v6),
        }
    }

    /// Addresses of `self` not in `other`.
    pub fn difference(&self, other: &Self) -> Self {
        Self {
            v4: self.v4.difference(&other.v4),
            v6: self.v6.difference(&other.v6),
        }
    }

    /// The address, when the set holds exactly one.
    pub fn only(&self) -> Option<IpAddr> {
        match (self.v4.ranges(), self.v6.ranges()) {
            ([(lo, hi)], []) if lo == hi => Some(IpAddr::V4(Ipv4Addr::from(*lo))),
            ([], [(lo, hi)]) if lo == hi => Some(IpAddr::V6(Ipv6Addr::from(*lo))),
            _ => None,
        }
    }

    /// The lowest address, used as the witness of a range.
    pub fn first(&self) -> Option<IpAddr> {
        self.v4
            .first()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .or_else(|| self.v6.first().map(|a| IpAddr::V6(Ipv6Addr::from(a))))
    }

    /// Splits the set into pieces that no block of `boundaries` cuts: inside one piece every
    /// block either holds every address or none, so one address stands for the piece.
    pub fn atoms<'a>(&self, boundaries: impl IntoIterator<Item = &'a Cidr>) -> Vec<AddrSet> {
        let mut cuts4: Vec<u32> = Vec::new();
        let mut cuts6: Vec<u128> = Vec::new();
        for c in boundaries {
            match c.0 {
                IpNet::V4(n) => {
                    cuts4.push(u32::from(n.network()));
                    if let Some(after) = u32::from(n.broadcast()).checked_add(1) {
                        cuts4.push(after);
                    }
                }
                IpNet::V6(n) => {
                    cuts6.push(u128::from(n.network()));
                    if let Some(after) = u128::from(n.broadcast()).checked_add(1) {
                        cuts6.push(after);
                    }
                }
            }
        }
        let mut out: Vec<AddrSet> = split(&self.v4, cuts4)
            .into_iter()
            .map(|(lo, hi)| AddrSet {
                v4: IntervalSet::range(lo, hi),
                v6: IntervalSet::empty(),
            })
            .collect();
        out.extend(split(&self.v6, cuts6).into_iter().map(|(lo, hi)| AddrSet {
            v4: IntervalSet::empty(),
            v6: IntervalSet::range(lo, hi),
        }));
        out
    }

    /// The set as CIDR blocks, at most `limit` of them (the rest is counted, not listed).
    pub fn to_cidrs(&self, limit: usize) -> (Vec<Cidr>, usize) {
        let mut all: Vec<Cidr> = Vec::new();
        for (lo, hi) in self.v4.ranges() {
            let subnets = Ipv4Subnets::new(Ipv4Addr::from(*lo), Ipv4Addr::from(*hi), 0);
            all.extend(subnets.map(|n: Ipv4Net| Cidr(IpNet::V4(n))));
        }
        for (lo, hi) in self.v6.ranges() {
            let subnets = Ipv6Subnets::new(Ipv6Addr::from(*lo), Ipv6Addr::from(*hi), 0);
            all.extend(subnets.map(|n: Ipv6Net| Cidr(IpNet::V6(n))));
        }
        let rest = all.len().saturating_sub(limit);
        all.truncate(limit);
        (all, rest)
    }
}

impl fmt::Display for AddrSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no address");
        }
        if *self == Self::any() {
            return f.write_str("any address");
        }
        if *self == Self::internet() {
            return f.write_str("the internet");
        }
        let (cidrs, rest) = self.to_cidrs(4);
        let text: Vec<String> = cidrs.iter().map(Cidr::to_string).collect();
        f.write_str(&text.join(", "))?;
        if rest > 0 {
            write!(f, " and {rest} more blocks")?;
        }
        Ok(())
    }
}

impl Serialize for AddrSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Splits intervals at the given cut points (each cut starts a new piece).
fn split<T: crate::interval::Point>(set: &IntervalSet<T>, mut cuts: Vec<T>) -> Vec<(T, T)> {
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    for &(lo, hi) in set.ranges() {
        let mut start = lo;
        let first = cuts.partition_point(|c| *c <= lo);
        for &cut in cuts.iter().skip(first) {
            if cut > hi {
                break;
            }
            if let Some(end) = cut.pred() {
                out.push((start, end));
            }
            start = cut;
        }
        out.push((start, hi));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    #[test]
    fn cidrs_are_normalized_and_bare_addresses_are_hosts() {
        assert_eq!(cidr("10.1.2.3/16").to_string(), "10.1.0.0/16");
        assert_eq!(cidr("10.1.2.3").to_string(), "10.1.2.3/32");
        assert!(Cidr::parse("10.1.2/33").is_err());
        assert!(Cidr::parse("staging").is_err());
    }

    #[test]
    fn containment_follows_the_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(cidr("10.1.0.0/16").contains(ip("10.1.255.255")));
        assert!(!cidr("10.1.0.0/16").contains(ip("10.2.0.0")));
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(cidr("10.0.0.5").contains(ip("10.0.0.5")));
        assert!(cidr("2001:db8::/32").contains(ip("2001:db8::1")));
    }

    #[test]
    fn atoms_are_never_cut_by_a_boundary() {
        let set = cidr("10.0.0.0/8").to_set();
        let bounds = [cidr("10.1.0.0/16"), cidr("10.1.2.0/24"), cidr("0.0.0.0/0")];
        let atoms = set.atoms(bounds.iter());
        assert_eq!(atoms.len(), 5);
        for atom in &atoms {
            for b in &bounds {
                let inside = b.to_set();
                assert!(inside.covers(atom) || !inside.intersects(atom));
            }
        }
    }

    #[test]
    fn the_internet_excludes_private_ranges() {
        let net = AddrSet::internet();
        assert!(net.contains("8.8.8.8".parse().unwrap()));
        assert!(!net.contains("10.0.0.1".parse().unwrap()));
        assert!(!net.contains("192.168.1.1".parse().unwrap()));
    }
}
