//! What a synthesized design uses, and whether it fits a board.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::board::Resources;

/// Primitive counts from a synthesis report, in the same units as
/// [`Resources`] (blocks, not bits, for memories).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utilization {
    pub lut: u64,
    pub ff: u64,
    pub dsp: u64,
    pub bram: u64,
    pub spram: u64,
    /// Every cell type the report listed, with its count (carry cells, I/O
    /// buffers and the like included), for anyone who wants the detail.
    pub cells: BTreeMap<String, u64>,
}

/// A resource that a board can run out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResourceKind {
    Lut,
    Ff,
    Dsp,
    Bram,
    Spram,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceKind::Lut => "LUT",
            ResourceKind::Ff => "FF",
            ResourceKind::Dsp => "DSP",
            ResourceKind::Bram => "block RAM",
            ResourceKind::Spram => "SPRAM",
        })
    }
}

/// One resource a design needs more of than the board has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overflow {
    pub resource: ResourceKind,
    pub used: u64,
    pub available: u64,
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} used, {} available", self.resource, self.used, self.available)
    }
}

impl Resources {
    /// `Ok` when every resource of `used` fits, otherwise every overflowing
    /// resource (not just the first), so a report can name them all.
    pub fn fits(&self, used: &Utilization) -> Result<(), Vec<Overflow>> {
        let pairs = [
            (ResourceKind::Lut, used.lut, self.lut),
            (ResourceKind::Ff, used.ff, self.ff),
            (ResourceKind::Dsp, used.dsp, self.dsp),
            (ResourceKind::Bram, used.bram, self.bram_blocks),
            (ResourceKind::Spram, used.spram, self.spram_blocks),
        ];
        let overflows: Vec<Overflow> = pairs
            .into_iter()
            .filter(|&(_, used, available)| used > available)
            .map(|(resource, used, available)| Overflow {
                resource,
                used,
                available,
            })
            .collect();
        if overflows.is_empty() {
            Ok(())
        } else {
            Err(overflows)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Board;

    fn up5k() -> Resources {
        Board::by_name("icebreaker").unwrap().resources
    }

    #[test]
    fn nothing_and_everything_fit() {
        assert_eq!(up5k().fits(&Utilization::default()), Ok(()));
        let full = Utilization {
            lut: 5280,
            ff: 5280,
            dsp: 8,
            bram: 30,
            spram: 4,
            ..Default::default()
        };
        assert_eq!(up5k().fits(&full), Ok(()));
    }

    #[test]
    fn names_every_overflowing_resource() {
        let used = Utilization {
            lut: 6000,
            ff: 100,
            dsp: 9,
            bram: 31,
            spram: 0,
            ..Default::default()
        };
        let overflows = up5k().fits(&used).unwrap_err();
        let kinds: Vec<_> = overflows.iter().map(|o| o.resource).collect();
        assert_eq!(kinds, [ResourceKind::Lut, ResourceKind::Dsp, ResourceKind::Bram]);
        assert_eq!(overflows[0].to_string(), "LUT: 6000 used, 5280 available");
        assert_eq!(
            overflows[1],
            Overflow {
                resource: ResourceKind::Dsp,
                used: 9,
                available: 8
            }
        );
    }

    #[test]
    fn a_single_dsp_overflows_a_board_without_dsps() {
        let hx8k = Board::by_name("alchitry-cu").unwrap().resources;
        let used = Utilization {
            dsp: 1,
            ..Default::default()
        };
        let overflows = hx8k.fits(&used).unwrap_err();
        assert_eq!(
            overflows,
            [Overflow {
                resource: ResourceKind::Dsp,
                used: 1,
                available: 0
            }]
        );
    }
}
