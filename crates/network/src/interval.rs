//! Sets of integers kept as sorted, disjoint, non-adjacent closed intervals.
//!
//! One generic type serves ports (`u16`), IPv4 addresses (`u32`) and IPv6 addresses (`u128`):
//! the engine reasons about whole ranges at once instead of single values, which is what keeps
//! 100,000 rules tractable.

use std::fmt;

/// An integer type whose full range an [`IntervalSet`] can cover.
pub trait Point: Copy + Ord + fmt::Debug {
    /// The smallest value.
    const MIN: Self;
    /// The largest value.
    const MAX: Self;
    /// The next value, or `None` at `MAX`.
    fn succ(self) -> Option<Self>;
    /// The previous value, or `None` at `MIN`.
    fn pred(self) -> Option<Self>;
}

macro_rules! point {
    ($($t:ty),*) => {$(
        impl Point for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            fn succ(self) -> Option<Self> { self.checked_add(1) }
            fn pred(self) -> Option<Self> { self.checked_sub(1) }
        }
    )*};
}
point!(u16, u32, u128);

/// A set of values as sorted, disjoint, non-adjacent `[lo, hi]` intervals.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct IntervalSet<T: Point> {
    ranges: Vec<(T, T)>,
}

impl<T: Point> IntervalSet<T> {
    /// The empty set.
    pub fn empty() -> Self {
        Self { ranges: Vec::new() }
    }

    /// Every value of the type.
    pub fn full() -> Self {
        Self::range(T::MIN, T::MAX)
    }

    /// The values `lo..=hi`; empty when `lo > hi`.
    pub fn range(lo: T, hi: T) -> Self {
        if lo > hi {
            Self::empty()
        } else {
            Self {
                ranges: vec![(lo, hi)],
            }
        }
    }

    /// Builds a set from any intervals, overlapping or not.
    pub fn from_ranges(mut ranges: Vec<(T, T)>) -> Self {
        ranges.retain(|(lo, hi)| lo <= hi);
        ranges.sort_unstable();
        let mut merged: Vec<(T, T)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if last.1.succ().is_none_or(|next| lo <= next) => {
                    last.1 = last.1.max(hi);
                }
                _ => merged.push((lo, hi)),
            }
        }
        Self { ranges: merged }
    }

    /// The intervals, sorted.
    pub fn ranges(&self) -> &[(T, T)] {
        &self.ranges
    }

    /// Whether the set has no value.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether the set holds every value.
    pub fn is_full(&self) -> bool {
        self.ranges == [(T::MIN, T::MAX)]
    }

    /// Whether `value` is in the set.
    pub fn contains(&self, value: T) -> bool {
        let idx = self.ranges.partition_point(|(_, hi)| *hi < value);
        self.ranges.get(idx).is_some_and(|(lo, _)| *lo <= value)
    }

    /// Whether every value of `other` is in `self`.
    pub fn covers(&self, other: &Self) -> bool {
        other.difference(self).is_empty()
    }

    /// Whether the two sets share a value (without building the intersection).
    pub fn intersects(&self, other: &Self) -> bool {
        let (mut i, mut j) = (0, 0);
        while let (Some(a), Some(b)) = (self.ranges.get(i), other.ranges.get(j)) {
            if a.0.max(b.0) <= a.1.min(b.1) {
                return true;
            }
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }

    /// The values in either set (a linear merge of the two sorted lists).
    pub fn union(&self, other: &Self) -> Self {
        if other.is_empty() {
            return self.clone();
        }
        if self.is_empty() {
            return other.clone();
        }
        let mut out: Vec<(T, T)> = Vec::with_capacity(self.ranges.len() + other.ranges.len());
        let (mut a, mut b) = (
            self.ranges.iter().peekable(),
            other.ranges.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            let Some(&(lo, hi)) = next else { break };
            match out.last_mut() {
                Some(last) if last.1.succ().is_none_or(|n| lo <= n) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        Self { ranges: out }
    }

    /// The values in both sets.
    pub fn intersection(&self, other: &Self) -> Self {
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while let (Some(a), Some(b)) = (self.ranges.get(i), other.ranges.get(j)) {
            let lo = a.0.max(b.0);
            let hi = a.1.min(b.1);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        Self { ranges: out }
    }

    /// The values of `self` that are not in `other`.
    pub fn difference(&self, other: &Self) -> Self {
        self.intersection(&other.complement())
    }

    /// The values not in the set.
    pub fn complement(&self) -> Self {
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        let mut next = Some(T::MIN);
        for (lo, hi) in &self.ranges {
            if let (Some(start), Some(before)) = (next, lo.pred())
                && start <= before
            {
                out.push((start, before));
            }
            next = hi.succ();
        }
        if let Some(start) = next {
            out.push((start, T::MAX));
        }
        Self { ranges: out }
    }

    /// The smallest value, if any.
    pub fn first(&self) -> Option<T> {
        self.ranges.first().map(|(lo, _)| *lo)
    }
}

impl<T: Point> fmt::Debug for IntervalSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.ranges.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn set(r: &[(u16, u16)]) -> IntervalSet<u16> {
        IntervalSet::from_ranges(r.to_vec())
    }

    #[test]
    fn adjacent_and_overlapping_ranges_merge() {
        assert_eq!(set(&[(5, 9), (1, 4), (8, 12)]).ranges(), &[(1, 12)]);
        assert_eq!(set(&[(1, 2), (4, 5)]).ranges(), &[(1, 2), (4, 5)]);
    }

    #[test]
    fn complement_of_full_is_empty_and_back() {
        let full = IntervalSet::<u16>::full();
        assert!(full.complement().is_empty());
        assert!(IntervalSet::<u16>::empty().complement().is_full());
        assert_eq!(set(&[(0, 9)]).complement().ranges(), &[(10, u16::MAX)]);
    }

    fn arb() -> impl Strategy<Value = IntervalSet<u16>> {
        proptest::collection::vec((any::<u16>(), any::<u16>()), 0..6).prop_map(|v| {
            IntervalSet::from_ranges(v.into_iter().map(|(a, b)| (a.min(b), a.max(b))).collect())
        })
    }

    proptest! {
        #[test]
        fn set_operations_agree_with_membership(a in arb(), b in arb(), x in any::<u16>()) {
            prop_assert_eq!(a.union(&b).contains(x), a.contains(x) || b.contains(x));
            prop_assert_eq!(a.intersection(&b).contains(x), a.contains(x) && b.contains(x));
            prop_assert_eq!(a.difference(&b).contains(x), a.contains(x) && !b.contains(x));
            prop_assert_eq!(a.complement().contains(x), !a.contains(x));
        }
    }
}
