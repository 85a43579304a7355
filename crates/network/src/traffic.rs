//! Traffic: protocols, port ranges and [`TrafficSet`], the set of (protocol, port) pairs a
//! rule admits or a flow carries.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::interval::IntervalSet;

const TCP: u8 = 6;
const UDP: u8 = 17;

/// An IP protocol as rules name it: `-1`/`all`, `tcp`, `udp`, `icmp`, or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Every protocol (`-1`).
    All,
    /// One IP protocol number (6 is TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    Number(u8),
}

/// A protocol name or number rampart does not know.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an IP protocol: {0:?}")]
pub struct BadProtocol(pub String);

impl Protocol {
    /// Parses the spellings of the AWS CLI and Terraform.
    pub fn parse(raw: &str) -> Result<Self, BadProtocol> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "-1" | "all" | "any" => Ok(Self::All),
            "tcp" => Ok(Self::Number(TCP)),
            "udp" => Ok(Self::Number(UDP)),
            "icmp" => Ok(Self::Number(1)),
            "icmpv6" | "icmp6" => Ok(Self::Number(58)),
            other => other
                .parse::<u8>()
                .map(Self::Number)
                .map_err(|_| BadProtocol(raw.to_owned())),
        }
    }

    /// Whether ports mean anything for this protocol.
    pub fn has_ports(self) -> bool {
        matches!(self, Self::Number(TCP | UDP))
    }
}

/// An inclusive port range, `from <= to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    from: u16,
    to: u16,
}

/// A port range with its ends reversed or out of 0..=65535.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a port range: {from}..{to}")]
pub struct BadPortRange {
    /// The first port as given.
    pub from: i64,
    /// The last port as given.
    pub to: i64,
}

impl PortRange {
    /// Checks the ends; both must be ports and `from <= to`.
    pub fn new(from: i64, to: i64) -> Result<Self, BadPortRange> {
        match (u16::try_from(from), u16::try_from(to)) {
            (Ok(f), Ok(t)) if f <= t => Ok(Self { from: f, to: t }),
            _ => Err(BadPortRange { from, to }),
        }
    }

    /// Every port.
    pub fn all() -> Self {
        Self {
            from: 0,
            to: u16::MAX,
        }
    }

    /// One port.
    pub fn single(port: u16) -> Self {
        Self {
            from: port,
            to: port,
        }
    }

    /// Parses `443` or `1024-65535`.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let (a, b) = raw.split_once('-').unwrap_or((raw, raw));
        Self::new(a.trim().parse().ok()?, b.trim().parse().ok()?).ok()
    }
}

/// A set of (protocol, port) pairs: port sets for TCP and UDP, whole protocols otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TrafficSet {
    tcp: IntervalSet<u16>,
    udp: IntervalSet<u16>,
    /// Protocol numbers other than TCP and UDP, as a 256-bit set.
    other: [u64; 4],
}

impl TrafficSet {
    /// No traffic.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every protocol and port.
    pub fn all() -> Self {
        let mut other = [u64::MAX; 4];
        other[0] &= !(1 << TCP) & !(1 << UDP);
        Self {
            tcp: IntervalSet::full(),
            udp: IntervalSet::full(),
            other,
        }
    }

    /// What a rule admits. Ports are ignored for protocols without ports (ICMP types
    /// are not modelled: a rule for any ICMP type admits ICMP).
    pub fn of(protocol: Protocol, ports: PortRange) -> Self {
        match protocol {
            Protocol::All => Self::all(),
            Protocol::Number(TCP) => Self::tcp(ports),
            Protocol::Number(UDP) => Self {
                udp: IntervalSet::range(ports.from, ports.to),
                ..Self::none()
            },
            Protocol::Number(n) => {
                let mut other = [0; 4];
                set_bit(&mut other, n);
                Self {
                    other,
                    ..Self::none()
                }
            }
        }
    }

    /// TCP on some ports.
    pub fn tcp(ports: PortRange) -> Self {
        Self {
            tcp: IntervalSet::range(ports.from, ports.to),
            ..Self::none()
        }
    }

    /// TCP on a list of ports.
    pub fn tcp_ports(ports: &[u16]) -> Self {
        Self {
            tcp: IntervalSet::from_ranges(ports.iter().map(|p| (*p, *p)).collect()),
            ..Self::none()
        }
    }

    /// TCP and UDP on some ports: what return traffic to ephemeral ports looks like.
    pub fn tcp_udp(ports: PortRange) -> Self {
        Self {
            tcp: IntervalSet::range(ports.from, ports.to),
            udp: IntervalSet::range(ports.from, ports.to),
            ..Self::none()
        }
    }

    /// Whether nothing is admitted.
    pub fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.udp.is_empty() && self.other == [0; 4]
    }

    /// Whether every protocol and port is admitted.
    pub fn is_all(&self) -> bool {
        *self == Self::all()
    }

    /// Whether the two sets share a (protocol, port).
    pub fn intersects(&self, other: &Self) -> bool {
        self.tcp.intersects(&other.tcp)
            || self.udp.intersects(&other.udp)
            || zip(self.other, other.other, |a, b| a & b) != [0; 4]
    }

    /// Traffic in either set.
    pub fn union(&self, o: &Self) -> Self {
        Self {
            tcp: self.tcp.union(&o.tcp),
            udp: self.udp.union(&o.udp),
            other: zip(self.other, o.other, |a, b| a | b),
        }
    }

    /// Traffic in both sets.
    pub fn intersection(&self, o: &Self) -> Self {
        Self {
            tcp: self.tcp.intersection(&o.tcp),
            udp: self.udp.intersection(&o.udp),
            other: zip(self.other, o.other, |a, b| a & b),
        }
    }

    /// Traffic of `self` not in `o`.
    pub fn difference(&self, o: &Self) -> Self {
        Self {
            tcp: self.tcp.difference(&o.tcp),
            udp: self.udp.difference(&o.udp),
            other: zip(self.other, o.other, |a, b| a & !b),
        }
    }

    /// Keeps TCP and UDP only where `tcp_ok`/`udp_ok` say so; used when return traffic of a
    /// stateless hop decides whether a connection can complete.
    pub fn keep_transport(&self, tcp_ok: bool, udp_ok: bool) -> Self {
        Self {
            tcp: if tcp_ok {
                self.tcp.clone()
            } else {
                IntervalSet::empty()
            },
            udp: if udp_ok {
                self.udp.clone()
            } else {
                IntervalSet::empty()
            },
            other: self.other,
        }
    }

    /// Whether the set has TCP traffic.
    pub fn has_tcp(&self) -> bool {
        !self.tcp.is_empty()
    }

    /// Whether the set has UDP traffic.
    pub fn has_udp(&self) -> bool {
        !self.udp.is_empty()
    }

    /// The TCP ports.
    pub fn tcp_set(&self) -> &IntervalSet<u16> {
        &self.tcp
    }
}

impl fmt::Display for TrafficSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("all traffic");
        }
        if self.is_empty() {
            return f.write_str("no traffic");
        }
        let mut parts = Vec::new();
        for (name, set) in [("tcp", &self.tcp), ("udp", &self.udp)] {
            if set.is_full() {
                parts.push(format!("{name} all ports"));
            } else if !set.is_empty() {
                let ports: Vec<String> = set
                    .ranges()
                    .iter()
                    .map(|(a, b)| {
                        if a == b {
                            a.to_string()
                        } else {
                            format!("{a}-{b}")
                        }
                    })
                    .collect();
                parts.push(format!("{name} {}", ports.join(",")));
            }
        }
        let others: Vec<u8> = (0..=u8::MAX).filter(|n| bit(&self.other, *n)).collect();
        if others.len() >= 250 {
            parts.push("all other protocols".to_owned());
        } else {
            for n in others {
                parts.push(match n {
                    1 => "icmp".to_owned(),
                    58 => "icmpv6".to_owned(),
                    n => format!("protocol {n}"),
                });
            }
        }
        f.write_str(&parts.join("; "))
    }
}

impl Serialize for TrafficSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn zip(a: [u64; 4], b: [u64; 4], op: impl Fn(u64, u64) -> u64) -> [u64; 4] {
    let [a0, a1, a2, a3] = a;
    let [b0, b1, b2, b3] = b;
    [op(a0, b0), op(a1, b1), op(a2, b2), op(a3, b3)]
}

fn set_bit(bits: &mut [u64; 4], n: u8) {
    if let Some(word) = bits.get_mut(usize::from(n / 64)) {
        *word |= 1 << (n % 64);
    }
}

fn bit(bits: &[u64; 4], n: u8) -> bool {
    bits.get(usize::from(n / 64))
        .is_some_and(|w| w & (1 << (n % 64)) != 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn all_traffic_contains_tcp_udp_and_icmp() {
        let all = TrafficSet::all();
        let icmp = TrafficSet::of(Protocol::parse("icmp").unwrap(), PortRange::all());
        assert!(all.intersects(&icmp));
        assert!(all.intersects(&TrafficSet::tcp(PortRange::single(22))));
        assert_eq!(all.to_string(), "all traffic");
    }

    #[test]
    fn protocol_spellings_of_cli_and_terraform_parse() {
        assert_eq!(Protocol::parse("-1"), Ok(Protocol::All));
        assert_eq!(Protocol::parse("6"), Ok(Protocol::Number(6)));
        assert_eq!(Protocol::parse("TCP"), Ok(Protocol::Number(6)));
        assert!(Protocol::parse("smtp").is_err());
    }

    #[test]
    fn reversed_port_ranges_are_rejected() {
        assert!(PortRange::new(443, 80).is_err());
        assert!(PortRange::new(-1, 80).is_err());
        assert_eq!(
            PortRange::parse("1024-65535"),
            PortRange::new(1024, 65535).ok()
        );
    }

    #[test]
    fn traffic_prints_ports_compactly() {
        let t = TrafficSet::tcp_ports(&[22, 80, 81, 443]);
        assert_eq!(t.to_string(), "tcp 22,80-81,443");
    }
}
