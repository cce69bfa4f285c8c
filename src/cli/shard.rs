//! `review --diff --shard K/N`: one job of a CI matrix of N reviews the K-th share of a
//! change's regions. The regions, in the change's order (files as git lists them, regions top
//! to bottom), are dealt out in turn: region `i` goes to shard `i mod N + 1`. So every region is
//! in exactly one shard, the shards are as even as the region count allows, and the same change
//! is dealt alike on every run.

use std::fmt;
use std::str::FromStr;

/// The most shards a change is split into (a CI matrix is far smaller; more is a typo).
const MAX_SHARDS: usize = 256;

/// Shard `index + 1` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// Whether the region at `position` in the change's order is this shard's.
    pub fn has(self, position: usize) -> bool {
        position % self.count == self.index
    }

    /// The SARIF category of this shard's report (`automationDetails.id`): code scanning keeps
    /// one analysis per category, so each job's report stands beside the others'.
    pub fn category(self) -> String {
        format!("refine-ls/shard-{}-of-{}/", self.index + 1, self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a shard: give K/N, e.g. 2/4 (the second of four)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: usize = k.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        if n == 0 || n > MAX_SHARDS {
            return Err(format!(
                "`{s}`: the number of shards must be between 1 and {MAX_SHARDS}"
            ));
        }
        if k == 0 || k > n {
            return Err(format!("`{s}`: the shard must be between 1 and {n}"));
        }
        Ok(Self {
            index: k - 1,
            count: n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_is_in_exactly_one_shard_and_shards_are_even() {
        for n in 1..=7usize {
            let shards: Vec<Shard> = (1..=n)
                .map(|k| format!("{k}/{n}").parse().unwrap())
                .collect();
            let mut sizes = vec![0usize; n];
            for region in 0..23 {
                let owners: Vec<usize> = (0..n).filter(|&k| shards[k].has(region)).collect();
                assert_eq!(owners.len(), 1, "region {region} of {n} shards: {owners:?}");
                sizes[owners[0]] += 1;
            }
            let (min, max) = (sizes.iter().min(), sizes.iter().max());
            assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{sizes:?}");
        }
    }

    #[test]
    fn shards_parse_strictly_and_say_why_not() {
        let s: Shard = " 2 / 4 ".trim().parse().unwrap();
        assert_eq!(s.to_string(), "2/4");
        assert_eq!(s.category(), "refine-ls/shard-2-of-4/");
        for (bad, why) in [
            ("0/4", "between 1 and 4"),
            ("5/4", "between 1 and 4"),
            ("1/0", "between 1 and 256"),
            ("1/100000000000000000000", "not a shard"),
            ("1/1000", "between 1 and 256"),
            ("-1/4", "not a shard"),
            ("2", "not a shard"),
            ("a/b", "not a shard"),
            ("", "not a shard"),
        ] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
