//! A simple dual-port RAM ([`SdpRam`]): one write port, one registered read
//! port, one clock, sized at run time (`lanes` lanes of `T`, `depth` words).
//!
//! The Verilog is hand-written (`Verilog::Custom`) so that yosys infers iCE40
//! block RAM (SB_RAM40_4K) with no read-during-write logic: the array carries
//! `(* no_rw_check *)` (DESIGN.md §5). The price is a rule for the user:
//! **never read and write the same word in the same cycle** — the read data is
//! then undefined in hardware. The rust-hdl simulation model returns the old
//! word (read before write), which is what yosys' EBR mapping does as well.
//!
//! # Ports (cycle `t` ends with rising edge `t`)
//!
//! - `write_enable`, `write_address`, `write_data[k]`, `write_lanes[k]`:
//!   at edge `t`, lane `k` of word `write_address` takes `write_data[k]` if
//!   `write_enable` and `write_lanes[k]` are high (lane = byte for `T = Bits<8>`,
//!   so `write_lanes` are byte enables).
//! - `read_address` applied in cycle `t` gives the word on `read_data[k]`
//!   during cycle `t + 1` (one registered read; the output holds otherwise).
//!
//! Addresses are 16 bits (docs/isa.md §3: instructions address buffer words
//! with 16 bits); only the low `ceil(log2(depth))` bits are used.

use rust_hdl::prelude::*;

/// Address width of every buffer port (docs/isa.md §3).
pub const ADDR_BITS: usize = 16;

/// Simple dual-port RAM of `depth` words of `lanes` lanes of `T`.
#[derive(LogicBlock)]
pub struct SdpRam<T: Synth> {
    pub clock: Signal<In, Clock>,
    pub write_enable: Signal<In, Bit>,
    pub write_address: Signal<In, Bits<ADDR_BITS>>,
    /// Per lane: the data to write.
    pub write_data: Vec<Signal<In, T>>,
    /// Per lane: write this lane (byte enables when `T = Bits<8>`).
    pub write_lanes: Vec<Signal<In, Bit>>,
    pub read_address: Signal<In, Bits<ADDR_BITS>>,
    /// Per lane: the word read at the previous edge.
    pub read_data: Vec<Signal<Out, T>>,
    _depth: usize,
    /// Simulation model: lane `k` of word `a` at `a * lanes + k`.
    _sim: Vec<T>,
}

impl<T: Synth> SdpRam<T> {
    /// A RAM of `depth` words (1..=65536) of `lanes >= 1` lanes, all zero.
    pub fn new(lanes: usize, depth: usize) -> Self {
        assert!(lanes >= 1, "an SdpRam needs at least one lane");
        assert!((1..=1 << ADDR_BITS).contains(&depth), "depth must be 1..=65536");
        Self {
            clock: Default::default(),
            write_enable: Default::default(),
            write_address: Default::default(),
            write_data: (0..lanes).map(|_| Default::default()).collect(),
            write_lanes: (0..lanes).map(|_| Default::default()).collect(),
            read_address: Default::default(),
            read_data: (0..lanes).map(|_| Default::default()).collect(),
            _depth: depth,
            _sim: vec![T::default(); lanes * depth],
        }
    }

    pub fn lanes(&self) -> usize {
        self.write_data.len()
    }

    pub fn depth(&self) -> usize {
        self._depth
    }

    /// Simulation-model backdoor: lane `k` of word `addr`.
    pub fn peek(&self, addr: usize, k: usize) -> T {
        self._sim[addr * self.lanes() + k]
    }

    /// Simulation-model backdoor: set lane `k` of word `addr`.
    pub fn poke(&mut self, addr: usize, k: usize, value: T) {
        let lanes = self.lanes();
        self._sim[addr * lanes + k] = value;
    }

    /// Bits of the used address (at least 1).
    fn address_bits(&self) -> usize {
        (usize::BITS - (self._depth.max(2) - 1).leading_zeros()) as usize
    }

    /// Word index of `address` as the hardware sees it (low address bits),
    /// `None` past `depth` (unspecified in hardware).
    fn word(&self, address: Bits<ADDR_BITS>) -> Option<usize> {
        let a = address.index() & ((1 << self.address_bits()) - 1);
        (a < self._depth).then_some(a)
    }

    /// Registered read, then the lane-masked write (read-before-write).
    fn clock_edge(&mut self) {
        let lanes = self.lanes();
        if let Some(a) = self.word(self.read_address.val()) {
            for k in 0..lanes {
                self.read_data[k].next = self._sim[a * lanes + k];
            }
        }
        if !self.write_enable.val() {
            return;
        }
        if let Some(a) = self.word(self.write_address.val()) {
            for k in 0..lanes {
                if self.write_lanes[k].val() {
                    self._sim[a * lanes + k] = self.write_data[k].val();
                }
            }
        }
    }

    /// The Verilog body; see the module documentation.
    fn verilog(&self) -> String {
        let (lanes, lane_bits, aw) = (self.lanes(), T::BITS, self.address_bits());
        let width = lanes * lane_bits;
        let mut v = format!(
            "(* no_rw_check *) reg [{}:0] mem [0:{}];\nreg [{}:0] q;\n",
            width - 1,
            self._depth - 1,
            width - 1
        );
        v += &format!("wire [{}:0] wa = write_address[{}:0];\n", aw - 1, aw - 1);
        v += &format!("wire [{}:0] ra = read_address[{}:0];\n", aw - 1, aw - 1);
        if aw < ADDR_BITS {
            // Verilator's UNUSED check skips names containing "unused".
            v += &format!(
                "wire unused_address = ^{{write_address[{h}:{aw}], read_address[{h}:{aw}]}};\n",
                h = ADDR_BITS - 1
            );
        }
        v += "always @(posedge clock) begin\n";
        for k in 0..lanes {
            v += &format!(
                "  if (write_enable & write_lanes${k}) mem[wa][{}:{}] <= write_data${k};\n",
                (k + 1) * lane_bits - 1,
                k * lane_bits
            );
        }
        v += "end\nalways @(posedge clock) q <= mem[ra];\nalways @(*) begin\n";
        for k in 0..lanes {
            v += &format!("  read_data${k} = q[{}:{}];\n", (k + 1) * lane_bits - 1, k * lane_bits);
        }
        v + "end\n"
    }
}

impl<T: Synth> Logic for SdpRam<T> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            self.clock_edge();
        }
    }

    fn connect(&mut self) {
        for d in self.read_data.iter_mut() {
            d.connect();
        }
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(self.verilog())
    }
}

/// A byte-lane RAM (`lanes` bytes per word) as a standalone top module.
pub fn sdp_ram_verilog(lanes: usize, depth: usize) -> String {
    crate::verilog::top_verilog(SdpRam::<Bits<8>>::new(lanes, depth))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// One cycle: apply the inputs with the clock low, then the rising edge.
    fn cycle(ram: &mut SdpRam<Bits<8>>, write: Option<(usize, &[u8], &[bool])>, read: usize) {
        ram.write_enable.next = write.is_some();
        if let Some((addr, data, lanes)) = write {
            ram.write_address.next = (addr as u64).into();
            for k in 0..data.len() {
                ram.write_data[k].next = (data[k] as u64).into();
                ram.write_lanes[k].next = lanes[k];
            }
        }
        ram.read_address.next = (read as u64).into();
        ram.clock.next = Clock { clk: false };
        assert!(simulate(ram, 100), "RAM did not settle with the clock low");
        ram.clock.next = Clock { clk: true };
        assert!(simulate(ram, 100), "RAM did not settle after the edge");
    }

    fn read_word(ram: &SdpRam<Bits<8>>) -> Vec<u8> {
        ram.read_data.iter().map(|d| d.val().index() as u8).collect()
    }

    /// Random byte-masked writes and reads against a `Vec<u8>` model,
    /// never reading the word written in the same cycle.
    #[test]
    fn random_byte_masked_writes_and_reads() {
        let (lanes, depth) = (3, 37);
        let mut ram = SdpRam::<Bits<8>>::new(lanes, depth);
        ram.connect_all();
        let mut model = vec![0u8; lanes * depth];
        let mut rng = ChaCha8Rng::seed_from_u64(0x4a3);
        for _ in 0..600 {
            let read = rng.gen_range(0..depth);
            let write = rng.gen_range(0..depth);
            let data: Vec<u8> = (0..lanes).map(|_| rng.gen()).collect();
            let mask: Vec<bool> = (0..lanes).map(|_| rng.gen_bool(0.6)).collect();
            let writing = write != read && rng.gen_bool(0.5);
            let next = model[read * lanes..(read + 1) * lanes].to_vec();
            cycle(&mut ram, writing.then_some((write, &data[..], &mask[..])), read);
            assert_eq!(read_word(&ram), next, "read of word {read}");
            if writing {
                for k in (0..lanes).filter(|&k| mask[k]) {
                    model[write * lanes + k] = data[k];
                }
            }
        }
        for a in 0..depth {
            for k in 0..lanes {
                assert_eq!(ram.peek(a, k).index() as u8, model[a * lanes + k]);
            }
        }
    }

    /// The read output holds while the read address is unchanged, and a write
    /// shows up on the next read (one cycle later).
    #[test]
    fn registered_read_latency_is_one_cycle() {
        let mut ram = SdpRam::<Bits<8>>::new(2, 4);
        ram.connect_all();
        cycle(&mut ram, Some((1, &[7, 9], &[true, true])), 0);
        assert_eq!(read_word(&ram), [0, 0]);
        cycle(&mut ram, Some((1, &[5, 6], &[false, true])), 1);
        assert_eq!(read_word(&ram), [7, 9], "old word, then the masked write");
        cycle(&mut ram, None, 1);
        assert_eq!(read_word(&ram), [7, 6]);
        ram.poke(2, 0, 42.into());
        cycle(&mut ram, None, 2);
        assert_eq!(read_word(&ram), [42, 0]);
    }

    #[test]
    fn verilog_declares_the_array_without_read_write_checks() {
        let v = sdp_ram_verilog(2, 4);
        println!("{v}");
        assert!(v.contains("(* no_rw_check *) reg [15:0] mem [0:3];"), "{v}");
    }

    #[test]
    fn verilog_lints_clean() {
        for (lanes, depth) in [(1, 2), (4, 512), (8, 65536), (3, 37)] {
            crate::testing::assert_lints_clean(&sdp_ram_verilog(lanes, depth));
        }
        let mut wide = SdpRam::<Bits<32>>::new(2, 100);
        wide.connect_all();
        crate::testing::assert_lints_clean(&generate_verilog(&wide));
    }

    /// The custom Verilog against a byte model in Verilator: random
    /// byte-masked writes and reads (never the same word in one cycle), each
    /// read checked after its edge once the word has been written.
    #[test]
    fn verilog_matches_the_model_in_verilator() {
        let (lanes, depth, n) = (3, 20, 600);
        let mut rng = ChaCha8Rng::seed_from_u64(0x51);
        let mut model: Vec<Option<u8>> = vec![None; lanes * depth];
        let mut hex = String::new();
        for _ in 0..n {
            let (wa, ra) = (rng.gen_range(0..depth), rng.gen_range(0..depth));
            let we = wa != ra && rng.gen_bool(0.6);
            let mask: Vec<bool> = (0..lanes).map(|_| rng.gen_bool(0.7)).collect();
            let data: Vec<u8> = (0..lanes).map(|_| rng.gen()).collect();
            let read: Vec<Option<u8>> = model[ra * lanes..(ra + 1) * lanes].to_vec();
            let check = read.iter().all(|b| b.is_some());
            if we {
                for k in (0..lanes).filter(|&k| mask[k]) {
                    model[wa * lanes + k] = Some(data[k]);
                }
            }
            let bits = mask.iter().enumerate().map(|(k, &m)| (m as u32) << k).sum::<u32>();
            let bytes = |v: &[u8]| v.iter().rev().map(|b| format!("{b:02x}")).collect::<String>();
            let expect: Vec<u8> = read.iter().map(|b| b.unwrap_or(0)).collect();
            hex += &format!(
                "{:02x}{:04x}{:04x}{:02x}{}{}\n",
                (we as u8) | ((check as u8) << 1),
                wa,
                ra,
                bits,
                bytes(&data),
                bytes(&expect)
            );
        }
        let w = 8 * (6 + 2 * lanes) - 1;
        let d = 8 * lanes;
        let mut ports = String::new();
        for k in 0..lanes {
            let (h, l) = (8 * k + 7, 8 * k);
            ports += &format!(", .write_data${k}(wd[{h}:{l}]), .write_lanes${k}(wl[{k}]), .read_data${k}(rd[{h}:{l}])");
        }
        let tb = format!(
            r#"module tb;
  reg clock = 0, we = 0; reg [15:0] wa = 0, ra = 0; reg [{d1}:0] wd = 0; reg [{l1}:0] wl = 0; wire [{d1}:0] rd;
  reg [{w}:0] v [0:{n1}]; reg [{w}:0] x; integer i, errors = 0, checked = 0;
  top dut(.clock(clock), .write_enable(we), .write_address(wa), .read_address(ra){ports});
  initial begin
    $readmemh("vectors.hex", v);
    for (i = 0; i < {n}; i = i + 1) begin
      x = v[i];
      we = x[{w}-7]; wa = x[{w}-8:{w}-23]; ra = x[{w}-24:{w}-39]; wl = x[{w}-40-{pad}:{w}-47];
      wd = x[{d2}-1:{d}];
      #1 clock = 1; #1 clock = 0;
      if (x[{w}-6]) begin checked = checked + 1; if (rd !== x[{d1}:0]) errors = errors + 1; end
    end
    $display("CHECKED %0d reads, %0d mismatches", checked, errors);
    $finish;
  end
endmodule
"#,
            d1 = d - 1,
            l1 = lanes - 1,
            n1 = n - 1,
            d2 = 2 * d,
            pad = 8 - lanes,
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("top.v"), sdp_ram_verilog(lanes, depth)).unwrap();
        std::fs::write(dir.path().join("tb.sv"), tb).unwrap();
        std::fs::write(dir.path().join("vectors.hex"), hex).unwrap();
        let Some(stdout) = crate::testing::run_testbench(dir.path(), &["tb.sv", "top.v"]) else {
            return;
        };
        let checked = stdout
            .split("CHECKED ")
            .nth(1)
            .and_then(|t| t.split(' ').next()?.parse::<usize>().ok());
        assert!(
            checked.is_some_and(|c| c > n / 2) && stdout.contains(" 0 mismatches"),
            "{stdout}"
        );
    }

    /// yosys `synth_ice40` of one RAM: returns the `stat` text, or `None`
    /// (with a note) when yosys is absent.
    pub(crate) fn ice40_stat(verilog: &str) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("top.v");
        std::fs::write(&path, verilog).unwrap();
        let out = match std::process::Command::new("yosys")
            .args(["-q", "-p", "synth_ice40 -top top; tee -o stat.txt stat"])
            .arg(&path)
            .current_dir(dir.path())
            .output()
        {
            Ok(o) => o,
            Err(_) => {
                println!("SKIPPED: yosys not found");
                return None;
            }
        };
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Some(std::fs::read_to_string(dir.path().join("stat.txt")).unwrap())
    }

    /// Count of cells `name` in a yosys `stat` report.
    pub(crate) fn cells(stat: &str, name: &str) -> usize {
        stat.lines()
            .filter_map(|l| l.trim().strip_prefix(name)?.trim().parse::<usize>().ok())
            .sum()
    }

    #[test]
    fn maps_to_ice40_block_ram() {
        // 512 x 4 bytes = 16 Kbit: 4 EBRs; byte enables need the 256x16 mode.
        for (lanes, depth, brams) in [(4, 512, 4), (1, 512, 1)] {
            let Some(stat) = ice40_stat(&sdp_ram_verilog(lanes, depth)) else {
                return;
            };
            println!("{lanes}x{depth}:\n{stat}");
            assert_eq!(cells(&stat, "SB_RAM40_4K"), brams, "{stat}");
            assert!(cells(&stat, "SB_LUT4") <= 4, "{stat}");
        }
    }
}
