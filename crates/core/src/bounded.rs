//! Numbers that carry their allowed range in their type.
//!
//! The security page's numbers (log retention 15–30 days, backup tiers, session limits) are
//! bounds in code: a `Bounded<15, 30>` that exists is inside the range, and a config value
//! outside it fails to parse with a message naming the range.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An integer known to lie in `LO..=HI`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bounded<const LO: i64, const HI: i64>(i64);

/// A number outside its allowed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{value} is outside the allowed range {lo}..={hi}")]
pub struct OutOfRange {
    /// What was given.
    pub value: i64,
    /// Smallest allowed.
    pub lo: i64,
    /// Largest allowed.
    pub hi: i64,
}

impl<const LO: i64, const HI: i64> Bounded<LO, HI> {
    /// Checks `value` against the range.
    pub const fn new(value: i64) -> Result<Self, OutOfRange> {
        if value >= LO && value <= HI {
            Ok(Self(value))
        } else {
            Err(OutOfRange {
                value,
                lo: LO,
                hi: HI,
            })
        }
    }

    /// `value` moved into the range: for defaults written in code.
    pub const fn clamped(value: i64) -> Self {
        if value < LO {
            Self(LO)
        } else if value > HI {
            Self(HI)
        } else {
            Self(value)
        }
    }

    /// The number.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl<const LO: i64, const HI: i64> Serialize for Bounded<LO, HI> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de, const LO: i64, const HI: i64> Deserialize<'de> for Bounded<LO, HI> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(d)?;
        Self::new(value).map_err(|e| {
            serde::de::Error::custom(format!(
                "{} is not allowed: use a value from {} to {}",
                e.value, e.lo, e.hi
            ))
        })
    }
}

impl<const LO: i64, const HI: i64> std::fmt::Display for Bounded<LO, HI> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_the_range_do_not_exist() {
        assert_eq!(Bounded::<15, 30>::new(15).map(Bounded::get), Ok(15));
        assert_eq!(Bounded::<15, 30>::new(30).map(Bounded::get), Ok(30));
        assert_eq!(
            Bounded::<15, 30>::new(31),
            Err(OutOfRange {
                value: 31,
                lo: 15,
                hi: 30
            })
        );
        assert!(Bounded::<15, 30>::new(14).is_err());
    }

    #[test]
    fn parsing_names_the_range() {
        let err = serde_json::from_str::<Bounded<15, 30>>("45")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("from 15 to 30"), "{err}");
    }
}
