//! The datacenter topology: an ordered hierarchy of location levels (outermost first, by
//! default `zone > rack > host`), each with the relative cost of a byte crossing it and the
//! bandwidth of its links, and the locations of nodes and trainers taken from their labels.
//!
//! Pure: parsing and arithmetic only, no I/O.
//!
//! # Cost model
//! Two locations *cross* at the outermost level whose label differs between them
//! ([`Topology::crossing`]); a byte between them costs that level's `cost`
//! ([`Topology::cost`]), and 0 when they agree at every level (the same host). A label that
//! one side has and the other lacks differs; a label that both lack does not separate them
//! (a cluster that labels only racks is one implicit zone).
//!
//! # The topology file
//! YAML, given to the coordinator with `--topology FILE`; without it, [`Topology::default`].
//! `levels` lists the levels outermost first; each names the node label it reads (`name`),
//! the relative cost of a byte crossing it (`cost`: finite, >= 0, never larger than an outer
//! level's) and the bandwidth of a link at that level (`bandwidth`: bytes per second as a
//! number, or a string with a unit: `bit`, `Kbit`, `Mbit`, `Gbit`, `Tbit` (bits per second,
//! decimal) or `B`, `KB`, `MB`, `GB`, `TB` (bytes per second, decimal), an optional `/s`
//! after it). The defaults, written as a file:
//!
//! ```yaml
//! levels:
//!   - name: zone          # label key on nodes and trainers
//!     cost: 10            # a byte between zones costs 10
//!     bandwidth: 10Gbit   # per link between zones
//!   - name: rack
//!     cost: 4
//!     bandwidth: 25Gbit
//!   - name: host
//!     cost: 1
//!     bandwidth: 100Gbit
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The location levels of the datacenter, outermost first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// The levels, outermost (e.g. zone) first, innermost (e.g. host) last.
    pub levels: Vec<Level>,
}

/// One level of the hierarchy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Level {
    /// The label key that names a location at this level (e.g. `zone`).
    pub name: String,
    /// Relative cost of a byte crossing this level (between two of its locations).
    pub cost: f64,
    /// Bandwidth of one link at this level, bytes per second.
    pub bandwidth_bytes_per_s: u64,
}

/// Where a node or trainer is: its topology labels (level name → value).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Location(pub BTreeMap<String, String>);

/// Why a topology file or a location was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TopologyError {
    /// The file is not YAML of the expected shape.
    #[error("topology file, line {line} column {column}: {message}")]
    Syntax {
        /// 1-based line (0: unknown).
        line: usize,
        /// 1-based column (0: unknown).
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// No level.
    #[error("topology: `levels` lists no level")]
    NoLevels,
    /// A level without a name.
    #[error("topology: levels[{index}].name is empty")]
    EmptyName {
        /// The level's index.
        index: usize,
    },
    /// Two levels of one name.
    #[error("topology: levels[{index}].name {name:?} names an earlier level too")]
    DuplicateLevel {
        /// The later level's index.
        index: usize,
        /// The name.
        name: String,
    },
    /// A cost that is negative or not finite.
    #[error("topology: levels[{index}].cost ({name}) is {cost}; it must be finite and >= 0")]
    BadCost {
        /// The level's index.
        index: usize,
        /// The level's name.
        name: String,
        /// The cost given.
        cost: f64,
    },
    /// A cost larger than an outer level's.
    #[error(
        "topology: levels[{index}].cost ({name}) is {cost}, more than the outer level's {outer}; \
         costs must not increase from outer to inner levels"
    )]
    CostIncreases {
        /// The level's index.
        index: usize,
        /// The level's name.
        name: String,
        /// Its cost.
        cost: f64,
        /// The cost of the level outside it.
        outer: f64,
    },
    /// A bandwidth that is not a positive number of bytes/s or a size with a unit.
    #[error(
        "topology: levels[{index}].bandwidth ({name}) is {value:?}; give bytes per second \
         (> 0) or a rate such as \"25Gbit\" or \"3GB/s\""
    )]
    BadBandwidth {
        /// The level's index.
        index: usize,
        /// The level's name.
        name: String,
        /// The value given.
        value: String,
    },
    /// A `key=value` label list that does not parse.
    #[error("labels {text:?}: expected key=value pairs separated by commas")]
    BadLabels {
        /// The text given.
        text: String,
    },
}

impl Default for Topology {
    /// `zone > rack > host` with costs 10, 4, 1 (a byte leaving its zone costs ten times one
    /// between hosts of a rack; leaving its rack, four times) and links of 10, 25 and
    /// 100 Gbit/s.
    fn default() -> Self {
        let level = |name: &str, cost: f64, gbit: u64| Level {
            name: name.to_string(),
            cost,
            bandwidth_bytes_per_s: gbit * 1_000_000_000 / 8,
        };
        Self {
            levels: vec![
                level("zone", 10.0, 10),
                level("rack", 4.0, 25),
                level("host", 1.0, 100),
            ],
        }
    }
}

/// A level as the file writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelFile {
    name: String,
    cost: f64,
    bandwidth: Bandwidth,
}

/// A bandwidth as the file writes it: bytes per second, or a rate with a unit.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Bandwidth {
    Number(f64),
    Text(String),
}

/// The file's top level.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    levels: Vec<LevelFile>,
}

impl Topology {
    /// Parses and validates a topology file (module doc: the format).
    pub fn from_yaml(text: &str) -> Result<Self, TopologyError> {
        let file: TopologyFile =
            serde_norway::from_str(text).map_err(|e| TopologyError::Syntax {
                line: e.location().map_or(0, |l| l.line()),
                column: e.location().map_or(0, |l| l.column()),
                message: e.to_string(),
            })?;
        let mut levels = Vec::with_capacity(file.levels.len());
        for (index, l) in file.levels.into_iter().enumerate() {
            let bandwidth_bytes_per_s =
                bandwidth(&l.bandwidth).ok_or_else(|| TopologyError::BadBandwidth {
                    index,
                    name: l.name.clone(),
                    value: match &l.bandwidth {
                        Bandwidth::Number(n) => n.to_string(),
                        Bandwidth::Text(t) => t.clone(),
                    },
                })?;
            levels.push(Level {
                name: l.name,
                cost: l.cost,
                bandwidth_bytes_per_s,
            });
        }
        let topology = Self { levels };
        topology.validate()?;
        Ok(topology)
    }

    /// Checks: at least one level, names non-empty and unique, costs finite, >= 0 and not
    /// increasing from outer to inner, bandwidths > 0.
    pub fn validate(&self) -> Result<(), TopologyError> {
        if self.levels.is_empty() {
            return Err(TopologyError::NoLevels);
        }
        for (index, l) in self.levels.iter().enumerate() {
            if l.name.is_empty() {
                return Err(TopologyError::EmptyName { index });
            }
            if self.levels[..index].iter().any(|o| o.name == l.name) {
                return Err(TopologyError::DuplicateLevel {
                    index,
                    name: l.name.clone(),
                });
            }
            if !l.cost.is_finite() || l.cost < 0.0 {
                return Err(TopologyError::BadCost {
                    index,
                    name: l.name.clone(),
                    cost: l.cost,
                });
            }
            if let Some(outer) = index.checked_sub(1).map(|o| &self.levels[o]) {
                if l.cost > outer.cost {
                    return Err(TopologyError::CostIncreases {
                        index,
                        name: l.name.clone(),
                        cost: l.cost,
                        outer: outer.cost,
                    });
                }
            }
            if l.bandwidth_bytes_per_s == 0 {
                return Err(TopologyError::BadBandwidth {
                    index,
                    name: l.name.clone(),
                    value: "0".into(),
                });
            }
        }
        Ok(())
    }

    /// The index of the level named `name`.
    pub fn level_index(&self, name: &str) -> Option<usize> {
        self.levels.iter().position(|l| l.name == name)
    }

    /// The level that "cross rack" counts at: the one named `rack`, else the second to last
    /// (the last when there is one level).
    pub fn rack_level(&self) -> usize {
        self.level_index("rack")
            .unwrap_or_else(|| self.levels.len().saturating_sub(2))
    }

    /// The level that "cross zone" counts at: the one named `zone`, else the outermost.
    pub fn zone_level(&self) -> usize {
        self.level_index("zone").unwrap_or(0)
    }

    /// The location of a node or trainer with `labels`: only its labels that name levels.
    pub fn locate(&self, labels: &BTreeMap<String, String>) -> Location {
        Location(
            self.levels
                .iter()
                .filter_map(|l| labels.get_key_value(&l.name))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    /// The index of the outermost level at which `a` and `b` differ; `None` when they agree
    /// at every level. A label on one side only differs; one missing on both does not.
    pub fn crossing(&self, a: &Location, b: &Location) -> Option<usize> {
        self.levels
            .iter()
            .position(|l| a.get(&l.name) != b.get(&l.name))
    }

    /// The relative cost of one byte between `a` and `b`: the cost of the level they cross
    /// at, 0 when they do not cross.
    pub fn cost(&self, a: &Location, b: &Location) -> f64 {
        self.crossing(a, b).map_or(0.0, |i| self.levels[i].cost)
    }

    /// The bandwidth of the link between `a` and `b` (that of the level they cross at);
    /// `None` when they do not cross.
    pub fn bandwidth(&self, a: &Location, b: &Location) -> Option<u64> {
        self.crossing(a, b)
            .map(|i| self.levels[i].bandwidth_bytes_per_s)
    }
}

/// Bytes per second of a file bandwidth; `None` when not a positive finite rate.
fn bandwidth(b: &Bandwidth) -> Option<u64> {
    let per_s = match b {
        Bandwidth::Number(n) => *n,
        Bandwidth::Text(t) => {
            let t = t.trim();
            let t = t.strip_suffix("/s").unwrap_or(t).trim_end();
            let split = t
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(t.len());
            let (number, unit) = t.split_at(split);
            let number: f64 = number.parse().ok()?;
            let factor = match unit.trim() {
                "" | "B" => 1.0,
                "KB" => 1e3,
                "MB" => 1e6,
                "GB" => 1e9,
                "TB" => 1e12,
                "bit" => 1.0 / 8.0,
                "Kbit" => 1e3 / 8.0,
                "Mbit" => 1e6 / 8.0,
                "Gbit" => 1e9 / 8.0,
                "Tbit" => 1e12 / 8.0,
                _ => return None,
            };
            number * factor
        }
    };
    (per_s.is_finite() && per_s >= 1.0 && per_s < u64::MAX as f64).then(|| per_s.round() as u64)
}

impl Location {
    /// The value of label `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// True when no label is known (an unlabelled client).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `zone=z1,rack=r1,host=h1` (empty text: no labels).
    pub fn parse(text: &str) -> Result<Self, TopologyError> {
        let bad = || TopologyError::BadLabels {
            text: text.to_string(),
        };
        let mut labels = BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(bad)?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || labels.insert(k.to_string(), v.to_string()).is_some() {
                return Err(bad());
            }
        }
        Ok(Self(labels))
    }
}

impl From<BTreeMap<String, String>> for Location {
    fn from(labels: BTreeMap<String, String>) -> Self {
        Self(labels)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Location {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl fmt::Display for Location {
    /// `zone=z1,rack=r1` (labels in key order).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(text: &str) -> Location {
        Location::parse(text).expect("labels")
    }

    #[test]
    fn the_documented_file_is_the_default() {
        let doc = "levels:\n  - name: zone\n    cost: 10\n    bandwidth: 10Gbit\n  \
                   - name: rack\n    cost: 4\n    bandwidth: 25Gbit\n  \
                   - name: host\n    cost: 1\n    bandwidth: 100Gbit\n";
        assert_eq!(Topology::from_yaml(doc), Ok(Topology::default()));
    }

    #[test]
    fn bandwidth_takes_numbers_and_units() {
        let t = Topology::from_yaml(
            "levels:\n- {name: a, cost: 2, bandwidth: 1000}\n\
             - {name: b, cost: 2, bandwidth: 3GB/s}\n- {name: c, cost: 0, bandwidth: \"8 Mbit\"}\n",
        )
        .expect("valid");
        let bw: Vec<u64> = t.levels.iter().map(|l| l.bandwidth_bytes_per_s).collect();
        assert_eq!(bw, vec![1000, 3_000_000_000, 1_000_000]);
    }

    #[test]
    fn bad_files_name_the_offending_field() {
        let err = |text: &str| Topology::from_yaml(text).expect_err("refused");
        assert_eq!(err("levels: []\n"), TopologyError::NoLevels);
        assert!(matches!(
            err(
                "levels:\n- {name: a, cost: 1, bandwidth: 1}\n- {name: a, cost: 1, bandwidth: 1}\n"
            ),
            TopologyError::DuplicateLevel { index: 1, .. }
        ));
        assert!(matches!(
            err(
                "levels:\n- {name: a, cost: 1, bandwidth: 1}\n- {name: b, cost: 2, bandwidth: 1}\n"
            ),
            TopologyError::CostIncreases { index: 1, .. }
        ));
        assert!(matches!(
            err("levels:\n- {name: a, cost: -1, bandwidth: 1}\n"),
            TopologyError::BadCost { index: 0, .. }
        ));
        assert!(matches!(
            err("levels:\n- {name: a, cost: .nan, bandwidth: 1}\n"),
            TopologyError::BadCost { index: 0, .. }
        ));
        assert!(matches!(
            err("levels:\n- {name: a, cost: 1, bandwidth: 5 furlongs}\n"),
            TopologyError::BadBandwidth { index: 0, .. }
        ));
        assert!(matches!(
            err("levels:\n- {name: a, cost: 1, bandwidth: 0}\n"),
            TopologyError::BadBandwidth { index: 0, .. }
        ));
        assert!(matches!(
            err("levels:\n- name: a\n  cost: 1\n  bandwith: 1\n"),
            TopologyError::Syntax { line: 2.., .. }
        ));
    }

    #[test]
    fn crossing_is_the_outermost_differing_level() {
        let t = Topology::default();
        let a = loc("zone=z1,rack=r1,host=h1");
        assert_eq!(t.crossing(&a, &a), None);
        assert_eq!(t.cost(&a, &a), 0.0);
        assert_eq!(t.crossing(&a, &loc("zone=z1,rack=r1,host=h2")), Some(2));
        assert_eq!(t.crossing(&a, &loc("zone=z1,rack=r2,host=h1")), Some(1));
        // Rack names may repeat across zones: the zone decides first.
        assert_eq!(t.crossing(&a, &loc("zone=z2,rack=r1,host=h1")), Some(0));
        assert_eq!(t.cost(&a, &loc("zone=z2,rack=r1,host=h1")), 10.0);
        // A label on one side only differs; missing on both sides does not separate.
        assert_eq!(t.crossing(&a, &loc("rack=r1,host=h1")), Some(0));
        assert_eq!(
            t.crossing(&loc("rack=r1"), &loc("rack=r1,host=h1")),
            Some(2)
        );
        assert_eq!(t.crossing(&loc("rack=r1"), &loc("rack=r2")), Some(1));
        // Labels that name no level do not count.
        assert_eq!(
            t.crossing(&loc("rack=r1,gpu=a"), &loc("rack=r1,gpu=b")),
            None
        );
    }

    #[test]
    fn rack_and_zone_levels_fall_back_by_position() {
        let t = Topology::from_yaml(
            "levels:\n- {name: region, cost: 20, bandwidth: 1}\n\
             - {name: pod, cost: 5, bandwidth: 1}\n- {name: machine, cost: 1, bandwidth: 1}\n",
        )
        .expect("valid");
        assert_eq!((t.zone_level(), t.rack_level()), (0, 1));
        let d = Topology::default();
        assert_eq!((d.zone_level(), d.rack_level()), (0, 1));
    }

    #[test]
    fn locations_parse_and_print() {
        let l = loc(" zone=z1 , rack=r1,");
        assert_eq!(l.to_string(), "rack=r1,zone=z1");
        assert!(loc("").is_empty());
        assert!(Location::parse("zone").is_err());
        assert!(Location::parse("zone=a,zone=b").is_err());
        let labels: BTreeMap<String, String> = [("zone", "z"), ("gpu", "a100")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        assert_eq!(Topology::default().locate(&labels), loc("zone=z"));
    }
}
