//! Pass 4 (applied while emitting): the waits of every instruction. Each instruction
//! declares the on-chip buffer halves and external-memory tensors it reads and
//! writes; it then waits for the last instruction of another unit that wrote what it
//! reads (RAW) or read or wrote what it writes (WAR, WAW). Same-unit order is
//! guaranteed by the in-order units. Resources are coarse (whole buffer halves,
//! whole tensors), so the waits are conservative but never missing.

use std::collections::HashMap;

use crate::isa::{Instruction, Op, Unit, Waits};

/// Something an instruction reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    Act(u8),
    Wgt(u8),
    Param(u8),
    Out(u8),
    Acc,
    /// A tensor in external memory, by the base address of its region (aliases such
    /// as flatten share their input's region and so its resource).
    Dram(usize),
}

/// Completion count (index in its unit's stream + 1) of an earlier instruction.
type Mark = (Unit, u32);

#[derive(Default)]
pub struct Tracker {
    issued: HashMap<Unit, u32>,
    last_write: HashMap<Resource, Mark>,
    last_reads: HashMap<Resource, Vec<Mark>>,
}

impl Tracker {
    /// Compute the waits of `op`, record its accesses and return the instruction.
    pub fn emit(&mut self, op: Op, reads: &[Resource], writes: &[Resource]) -> Instruction {
        let unit = op.unit();
        let mut waits = Waits::default();
        let mut wait_on = |mark: Option<&Mark>| {
            if let Some(&(u, count)) = mark {
                if u != unit {
                    waits.raise(u, count);
                }
            }
        };
        for r in reads.iter().chain(writes) {
            wait_on(self.last_write.get(r));
        }
        for w in writes {
            for mark in self.last_reads.get(w).into_iter().flatten() {
                wait_on(Some(mark));
            }
        }
        let count = self.issued.entry(unit).or_default();
        *count += 1;
        let mark = (unit, *count);
        for r in reads {
            let readers = self.last_reads.entry(*r).or_default();
            readers.retain(|(u, _)| *u != unit);
            readers.push(mark);
        }
        for w in writes {
            self.last_write.insert(*w, mark);
            self.last_reads.remove(w);
        }
        Instruction { op, waits }
    }
}
