//! The weight-stationary systolic array of docs/isa.md §1: `rows x cols`
//! [`WsPe`]s, activations flowing right, partial sums and weights flowing down.
//!
//! # Interface
//!
//! All edge inputs are *unskewed* and registered once on entry; the array
//! builds the row and column skews itself:
//!
//! - `act_in[r]`: byte `r` of one activation word (one pixel, `rows` input
//!   channels), together with `act_signed` (sign- or zero-extend the bytes to
//!   9 bits) and `swap` (high with the first pixel of every slice, the first
//!   slice included: that pixel and the following ones use the weights loaded
//!   last). Row `r` is delayed by `r + 1` edges.
//! - `wload` + `wdata_in[c]`: one weight word (`cols` bytes, lane `c` = column
//!   `c`) per cycle; `wload` is a one-cycle pulse with word 0 (row 0's weights),
//!   words 1..rows follow on the next `rows - 1` cycles with `wload` low. This
//!   is a slice as the weight buffer stores it (docs/isa.md §2). Column `c` is
//!   delayed by `c + 1` edges.
//! - `psum_out[c]`: the bottom of column `c`, skewed (column `c` lags column
//!   0 by `c` cycles); the top of every column adds into 0.
//! - `act_out[r]`, `swap_out[r]` (right edge) and `wload_out[c]`,
//!   `wdata_out[c]` (bottom edge) pass the operands on, so arrays can be
//!   chained; they also keep the Verilog free of unread wires.
//!
//! # Timing (cycle `t` ends with rising edge `t`; inputs applied in cycle `t`
//! are sampled at edge `t`)
//!
//! - PE `(r, c)` sees the activation word of cycle `t` in cycle `t + 1 + r + c`.
//! - Column `c`'s sum for that word, `sum_r a[r] * w[r][c]`, is on
//!   `psum_out[c]` during cycle `t + rows + c + 1` (latency `rows + c + 1`).
//! - A weight pulse in cycle `k` fills the shadow of PE `(r, c)` at edge
//!   `k + 1 + c + 2r`; PE `(r, c)` swaps at edge `t + 1 + r + c` for a `swap`
//!   in cycle `t`. So a slice's pulse must come at least `rows` cycles before
//!   its first pixel (`k <= t - rows`, for the bottom row) and, because it
//!   overwrites the shadows, no earlier than the previous slice's first pixel
//!   (for row 0). Slices of `P` pixels therefore stream every `max(P, rows)`
//!   cycles with no bubble; the tests show both bounds are tight.
//! - `act_signed` is sampled with the bytes, so matmuls of different
//!   signedness may follow each other back to back.
//! - Edge outputs during cycle `n + 1`: `act_out[r]`/`swap_out[r]` carry what
//!   entered in cycle `n - r - cols`, `wdata_out[c]` the word of cycle
//!   `n - rows - c`, `wload_out[c]` the pulse of cycle `n - 2 rows - c`.
//! - A matmul of `S` slices: pulse at cycle 0, slice `s` starts at
//!   `rows + s * max(P, rows)`, the last result is taken at edge
//!   `2 rows + (S - 1) max(P, rows) + P + cols - 1`: the instruction occupies
//!   `2 rows + cols + (S - 1) max(P, rows) + P` cycles, exactly the cycle
//!   model's `compiler::cycles::matmul_cycles` (the tests check every run).
//!
//! # rust-hdl structure
//!
//! rust-hdl 0.46 implements `Block` for `Vec<B>`, so the size is chosen at run
//! time: the PEs are one flat `Vec<WsPe>` (index `r * cols + c`), the edge
//! ports `Vec<Signal>`s (Verilog ports `act_in$0`, `act_in$1`, ...), the skews
//! `Vec`s of [`DelayLine`]s. What makes that work:
//! - a `for` range in `#[hdl_gen]` code is plain Rust, evaluated when the
//!   Verilog is generated, so `0..self._rows` is fine; fields whose names
//!   start with `_` are ignored by `#[derive(LogicBlock)]`;
//! - an index expression, by contrast, is evaluated from its text with only
//!   the loop variables known, so the row stride `cols` is the loop variable
//!   `s` of a one-iteration loop and `rows - 1` the loop variable `last`;
//! - `#[hdl_gen]` rejects signals named `input` or `output` (hence
//!   `data_in` / `data_out`).

use rust_hdl::prelude::*;

use crate::ws_pe::{WsPe, ACT_BITS, PSUM_BITS, WEIGHT_BITS};

/// A chain of `depth >= 1` registers: `data_out` is `data_in` `depth` edges late.
#[derive(LogicBlock)]
pub struct DelayLine<T: Synth> {
    pub clock: Signal<In, Clock>,
    pub data_in: Signal<In, T>,
    pub data_out: Signal<Out, T>,
    taps: Vec<DFF<T>>,
}

impl<T: Synth> DelayLine<T> {
    pub fn new(depth: usize) -> Self {
        assert!(depth >= 1, "a DelayLine needs at least one register");
        Self {
            clock: Default::default(),
            data_in: Default::default(),
            data_out: Default::default(),
            taps: (0..depth).map(|_| DFF::default()).collect(),
        }
    }
}

impl<T: Synth> Logic for DelayLine<T> {
    #[hdl_gen]
    fn update(&mut self) {
        for k in 0..self.taps.len() {
            self.taps[k].clock.next = self.clock.val();
        }
        self.taps[0].d.next = self.data_in.val();
        for k in 1..self.taps.len() {
            self.taps[k].d.next = self.taps[k - 1].q.val();
        }
        // `last` is a loop variable because index expressions may use nothing else.
        for last in (self.taps.len() - 1)..self.taps.len() {
            self.data_out.next = self.taps[last].q.val();
        }
    }
}

/// Extends an activation byte to 9 bits: sign-extends if `is_signed`, else
/// zero-extends. Custom Verilog because rust-hdl cannot emit a concatenation.
#[derive(LogicBlock, Default)]
pub struct ByteExtend {
    pub lane: Signal<In, Bits<8>>,
    pub is_signed: Signal<In, Bit>,
    pub wide: Signal<Out, Signed<ACT_BITS>>,
}

impl Logic for ByteExtend {
    fn update(&mut self) {
        let value = self.lane.val().to_u64() as i64;
        let negative = self.is_signed.val() && value >= 128;
        self.wide.next = (if negative { value - 256 } else { value }).into();
    }

    fn connect(&mut self) {
        self.wide.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom("always @(*) wide = {is_signed & lane[7], lane};".into())
    }
}

/// The weight-stationary array; see the module documentation.
#[derive(LogicBlock)]
pub struct WsArray {
    pub clock: Signal<In, Clock>,
    /// Per row: the byte of the unskewed activation word.
    pub act_in: Vec<Signal<In, Bits<8>>>,
    /// Sign-extend (1) or zero-extend (0) this cycle's activation bytes.
    pub act_signed: Signal<In, Bit>,
    /// High with the first pixel of a slice.
    pub swap: Signal<In, Bit>,
    /// One-cycle pulse with weight word 0 of a slice.
    pub wload: Signal<In, Bit>,
    /// Per column: the byte of the unskewed weight word.
    pub wdata_in: Vec<Signal<In, Signed<WEIGHT_BITS>>>,
    /// Per column: the bottom PE's partial sum (column `c` lags by `c`).
    pub psum_out: Vec<Signal<Out, Signed<PSUM_BITS>>>,
    /// Per row: the activation leaving the right edge.
    pub act_out: Vec<Signal<Out, Signed<ACT_BITS>>>,
    /// Per row: the swap flag leaving the right edge.
    pub swap_out: Vec<Signal<Out, Bit>>,
    /// Per column: the weight pipe leaving the bottom edge.
    pub wdata_out: Vec<Signal<Out, Signed<WEIGHT_BITS>>>,
    /// Per column: the weight pulse leaving the bottom edge.
    pub wload_out: Vec<Signal<Out, Bit>>,
    extend: Vec<ByteExtend>,
    act_skew: Vec<DelayLine<Signed<ACT_BITS>>>,
    swap_skew: Vec<DelayLine<Bit>>,
    wload_skew: Vec<DelayLine<Bit>>,
    wdata_skew: Vec<DelayLine<Signed<WEIGHT_BITS>>>,
    pes: Vec<WsPe>,
    _rows: usize,
    _cols: usize,
}

/// `n` default-constructed elements.
fn many<T: Default>(n: usize) -> Vec<T> {
    (0..n).map(|_| T::default()).collect()
}

/// Delay lines of depths `1..=n`: element `i` delays by `i + 1` edges.
fn skew<T: Synth>(n: usize) -> Vec<DelayLine<T>> {
    (1..=n).map(DelayLine::new).collect()
}

impl WsArray {
    pub fn new(rows: usize, cols: usize) -> Self {
        assert!(rows >= 1 && cols >= 1, "empty {rows}x{cols} array");
        Self {
            clock: Default::default(),
            act_in: many(rows),
            act_signed: Default::default(),
            swap: Default::default(),
            wload: Default::default(),
            wdata_in: many(cols),
            psum_out: many(cols),
            act_out: many(rows),
            swap_out: many(rows),
            wdata_out: many(cols),
            wload_out: many(cols),
            extend: many(rows),
            act_skew: skew(rows),
            swap_skew: skew(rows),
            wload_skew: skew(cols),
            wdata_skew: skew(cols),
            pes: many(rows * cols),
            _rows: rows,
            _cols: cols,
        }
    }

    pub fn rows(&self) -> usize {
        self._rows
    }

    pub fn cols(&self) -> usize {
        self._cols
    }
}

impl Logic for WsArray {
    // One long function: `#[hdl_gen]` cannot translate calls to helpers.
    #[hdl_gen]
    fn update(&mut self) {
        // Row edge: extend, then skew activations and swap flags by r + 1.
        for r in 0..self._rows {
            self.extend[r].lane.next = self.act_in[r].val();
            self.extend[r].is_signed.next = self.act_signed.val();
            self.act_skew[r].clock.next = self.clock.val();
            self.act_skew[r].data_in.next = self.extend[r].wide.val();
            self.swap_skew[r].clock.next = self.clock.val();
            self.swap_skew[r].data_in.next = self.swap.val();
        }
        // Column edge: skew the weight pulse and data by c + 1.
        for c in 0..self._cols {
            self.wload_skew[c].clock.next = self.clock.val();
            self.wload_skew[c].data_in.next = self.wload.val();
            self.wdata_skew[c].clock.next = self.clock.val();
            self.wdata_skew[c].data_in.next = self.wdata_in[c].val();
        }
        // The row stride must be a loop variable (see the module docs).
        for s in self._cols..(self._cols + 1) {
            for r in 0..self._rows {
                for c in 0..self._cols {
                    self.pes[r * s + c].clock.next = self.clock.val();
                }
                self.pes[r * s].act_in.next = self.act_skew[r].data_out.val();
                self.pes[r * s].swap_in.next = self.swap_skew[r].data_out.val();
                for c in 1..self._cols {
                    self.pes[r * s + c].act_in.next = self.pes[r * s + c - 1].act_out.val();
                    self.pes[r * s + c].swap_in.next = self.pes[r * s + c - 1].swap_out.val();
                }
            }
            for c in 0..self._cols {
                self.pes[c].psum_in.next = 0.into();
                self.pes[c].wload_in.next = self.wload_skew[c].data_out.val();
                self.pes[c].wdata_in.next = self.wdata_skew[c].data_out.val();
            }
            for r in 1..self._rows {
                for c in 0..self._cols {
                    self.pes[r * s + c].psum_in.next = self.pes[r * s + c - s].psum_out.val();
                    self.pes[r * s + c].wload_in.next = self.pes[r * s + c - s].wload_out.val();
                    self.pes[r * s + c].wdata_in.next = self.pes[r * s + c - s].wdata_out.val();
                }
            }
            for r in 0..self._rows {
                for last in (self._cols - 1)..self._cols {
                    self.act_out[r].next = self.pes[r * s + last].act_out.val();
                    self.swap_out[r].next = self.pes[r * s + last].swap_out.val();
                }
            }
            for last in (self._rows - 1)..self._rows {
                for c in 0..self._cols {
                    self.psum_out[c].next = self.pes[last * s + c].psum_out.val();
                    self.wload_out[c].next = self.pes[last * s + c].wload_out.val();
                    self.wdata_out[c].next = self.pes[last * s + c].wdata_out.val();
                }
            }
        }
    }
}

/// The array's Verilog (top module `top`), as emitted by rust-hdl.
pub fn ws_array_verilog(rows: usize, cols: usize) -> String {
    crate::verilog::top_verilog(WsArray::new(rows, cols))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// One slice: weights `[row][col]`, activation bytes `[pixel][row]`.
    struct Slice {
        weights: Vec<Vec<i8>>,
        acts: Vec<Vec<u8>>,
        signed: bool,
    }

    impl Slice {
        /// The array's activation operand: the byte extended to 9 bits.
        fn act(&self, pixel: usize, row: usize) -> i64 {
            let byte = self.acts[pixel][row];
            if self.signed {
                byte as i8 as i64
            } else {
                byte as i64
            }
        }

        /// Column `c`'s expected sum for `pixel`, in i64.
        fn expected(&self, pixel: usize, col: usize) -> i64 {
            let rows = self.weights.len();
            (0..rows)
                .map(|r| self.act(pixel, r) * self.weights[r][col] as i64)
                .sum()
        }
    }

    /// Random slice with the extremes forced in: weight -128 and 127, and
    /// activations 255 / 0 (unsigned) or -128 / 127 (signed) against them.
    fn random_slice(rng: &mut ChaCha8Rng, rows: usize, cols: usize, pixels: usize) -> Slice {
        let mut weights: Vec<Vec<i8>> = (0..rows).map(|_| (0..cols).map(|_| rng.gen()).collect()).collect();
        let mut acts: Vec<Vec<u8>> = (0..pixels).map(|_| (0..rows).map(|_| rng.gen()).collect()).collect();
        let signed = rng.gen_bool(0.5);
        weights[0][0] = -128;
        weights[rows - 1][cols - 1] = 127;
        acts[0][0] = if signed { 0x80 } else { 0xff };
        acts[pixels - 1][rows - 1] = if signed { 0x7f } else { 0x00 };
        if pixels > 1 {
            acts[1] = vec![if signed { 0x80 } else { 0xff }; rows];
        }
        Slice { weights, acts, signed }
    }

    /// Inputs of one cycle.
    #[derive(Clone)]
    struct Cycle {
        acts: Vec<u8>,
        signed: bool,
        swap: bool,
        wload: bool,
        wdata: Vec<i8>,
    }

    /// How slices are fed: slice `s`'s first pixel enters at cycle
    /// `lead + s * period`, its weight pulse `lead` cycles earlier (slice 0's
    /// at cycle 0).
    #[derive(Clone, Copy)]
    struct Plan {
        period: usize,
        lead: usize,
    }

    /// The inputs of every cycle, idle lanes random (the array must ignore
    /// them), up to the cycle whose edge takes the last result.
    fn schedule(rng: &mut ChaCha8Rng, slices: &[Slice], plan: Plan, cols: usize) -> Vec<Cycle> {
        let rows = slices[0].weights.len();
        let pixels = slices[0].acts.len();
        let total = plan.lead + (slices.len() - 1) * plan.period + pixels + rows + cols;
        let mut cycles: Vec<Cycle> = (0..total)
            .map(|_| Cycle {
                acts: (0..rows).map(|_| rng.gen()).collect(),
                signed: rng.gen(),
                swap: false,
                wload: false,
                wdata: (0..cols).map(|_| rng.gen()).collect(),
            })
            .collect();
        for (s, slice) in slices.iter().enumerate() {
            let start = plan.lead + s * plan.period;
            cycles[start - plan.lead].wload = true;
            for r in 0..rows {
                cycles[start - plan.lead + r].wdata = slice.weights[r].clone();
            }
            cycles[start].swap = true;
            for (p, acts) in slice.acts.iter().enumerate() {
                cycles[start + p].acts = acts.clone();
                cycles[start + p].signed = slice.signed;
            }
        }
        cycles
    }

    fn clock_in(array: &mut WsArray, cycle: &Cycle) {
        for (r, &byte) in cycle.acts.iter().enumerate() {
            array.act_in[r].next = (byte as u64).into();
        }
        for (c, &weight) in cycle.wdata.iter().enumerate() {
            array.wdata_in[c].next = (weight as i64).into();
        }
        array.act_signed.next = cycle.signed;
        array.swap.next = cycle.swap;
        array.wload.next = cycle.wload;
        array.clock.next = Clock { clk: false };
        assert!(simulate(array, 1000), "array did not settle with the clock low");
        array.clock.next = Clock { clk: true };
        assert!(simulate(array, 1000), "array did not settle after the rising edge");
    }

    /// The 9-bit operand a cycle's byte lane becomes.
    fn extended(cycle: &Cycle, row: usize) -> i64 {
        let byte = cycle.acts[row];
        if cycle.signed {
            byte as i8 as i64
        } else {
            byte as i64
        }
    }

    /// After the edge of cycle `n`: the edge outputs carry what entered
    /// `rows + c` (wdata), `2 rows + c` (wload) and `r + cols` (act, swap)
    /// cycles earlier.
    fn check_pass_through(array: &WsArray, cycles: &[Cycle], n: usize) {
        let (rows, cols) = (array.rows(), array.cols());
        for c in (0..cols).filter(|c| n >= rows + c) {
            let wdata = Signed::<WEIGHT_BITS>::from(cycles[n - rows - c].wdata[c] as i64);
            assert_eq!(array.wdata_out[c].val(), wdata, "wdata_out[{c}] after edge {n}");
            let wload = n >= 2 * rows + c && cycles[n - 2 * rows - c].wload;
            assert_eq!(array.wload_out[c].val(), wload, "wload_out[{c}] after edge {n}");
        }
        for r in (0..rows).filter(|r| n >= r + cols) {
            let entered = &cycles[n - r - cols];
            let act = Signed::<ACT_BITS>::from(extended(entered, r));
            assert_eq!(array.act_out[r].val(), act, "act_out[{r}] after edge {n}");
            assert_eq!(array.swap_out[r].val(), entered.swap, "swap_out[{r}] after edge {n}");
        }
    }

    /// A simulated run: its inputs, `psum_out` after every edge, and how
    /// many of the expected column sums were right and wrong.
    struct Run {
        cycles: Vec<Cycle>,
        psums: Vec<Vec<i64>>,
        right: usize,
        wrong: usize,
    }

    /// Streams `slice_count` random slices of `pixels` pixels through a
    /// `rows x cols` array and compares every column's sum for every pixel,
    /// on the exact cycle the module documentation promises, with the i64
    /// reference.
    fn simulate_run(rows: usize, cols: usize, pixels: usize, slice_count: usize, plan: Plan, seed: u64) -> Run {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let slices: Vec<Slice> = (0..slice_count)
            .map(|_| random_slice(&mut rng, rows, cols, pixels))
            .collect();
        let cycles = schedule(&mut rng, &slices, plan, cols);
        let mut array = WsArray::new(rows, cols);
        array.connect_all();
        let (mut right, mut wrong, mut psums) = (0, 0, vec![]);
        for (n, cycle) in cycles.iter().enumerate() {
            clock_in(&mut array, cycle);
            check_pass_through(&array, &cycles, n);
            let psum: Vec<i64> = array
                .psum_out
                .iter()
                .map(|x| x.val().bigint().try_into().unwrap())
                .collect();
            for (s, slice) in slices.iter().enumerate() {
                for (c, &got) in psum.iter().enumerate() {
                    // Pixel p entered in cycle lead + s*period + p; column c
                    // shows its sum after edge (entry) + rows + c.
                    let entry = plan.lead + s * plan.period;
                    let Some(p) = n.checked_sub(entry + rows + c) else {
                        continue;
                    };
                    if p < pixels {
                        if got == slice.expected(p, c) {
                            right += 1
                        } else {
                            wrong += 1
                        }
                    }
                }
            }
            psums.push(psum);
        }
        assert_eq!(right + wrong, slice_count * pixels * cols, "every result compared");
        Run {
            cycles,
            psums,
            right,
            wrong,
        }
    }

    /// [`simulate_run`] with the fastest plan the module documentation
    /// allows; asserts that every sum is right and that the run took
    /// `compiler::cycles::matmul_cycles`.
    fn run(rows: usize, cols: usize, pixels: usize, slice_count: usize, seed: u64) -> Run {
        let plan = Plan {
            period: pixels.max(rows),
            lead: rows,
        };
        let run = simulate_run(rows, cols, pixels, slice_count, plan, seed);
        assert_eq!(run.wrong, 0, "{} of {} sums wrong", run.wrong, run.right + run.wrong);
        // The last result appears after the second-to-last edge; the consumer
        // takes it at the edge that ends the last cycle.
        // The hardware must take exactly what the compiler's cycle model predicts.
        assert_eq!(
            run.cycles.len() as u64,
            compiler::cycles::matmul_cycles(rows, cols, slice_count, pixels)
        );
        run
    }

    #[test]
    fn array_2x2_streams_slices_back_to_back() {
        run(2, 2, 5, 3, 1);
    }

    #[test]
    fn array_3x2_short_slices_wait_for_the_weight_load() {
        run(3, 2, 2, 3, 2);
    }

    #[test]
    fn array_3x2_slices_as_long_as_the_load() {
        // Period = rows: row 0's shadow is overwritten on the edge it swaps.
        run(3, 2, 3, 4, 3);
    }

    #[test]
    fn array_4x4_single_pixel_slices() {
        run(4, 4, 1, 3, 5);
    }

    #[test]
    fn array_4x4_streams_slices_back_to_back() {
        run(4, 4, 6, 2, 6);
    }

    #[test]
    fn array_2x3_with_idle_gaps_and_early_weights() {
        // Any period >= max(P, rows) and lead in rows..=period work.
        let run = simulate_run(2, 3, 4, 3, Plan { period: 7, lead: 5 }, 4);
        assert_eq!(run.wrong, 0);
    }

    #[test]
    fn weights_one_cycle_late_are_not_ready() {
        let run = simulate_run(3, 2, 4, 3, Plan { period: 4, lead: 2 }, 7);
        assert!(run.wrong > 0, "a lead of rows - 1 should break the last row");
    }

    #[test]
    fn slices_shorter_than_the_load_need_padding() {
        // Period rows - 1: the next load overwrites shadows before they swap.
        let run = simulate_run(3, 2, 2, 3, Plan { period: 2, lead: 3 }, 8);
        assert!(run.wrong > 0, "a period of rows - 1 should break");
    }

    #[test]
    fn verilog_lints_clean() {
        for (rows, cols) in [(3, 2), (2, 3), (1, 1)] {
            crate::testing::assert_lints_clean(&ws_array_verilog(rows, cols));
        }
    }

    /// A Verilog testbench that applies `run`'s inputs cycle by cycle and
    /// compares `psum_out` after every edge with the rust-hdl simulation.
    fn testbench(run: &Run, rows: usize, cols: usize) -> String {
        let mut decls = String::from("  reg clock = 0, act_signed = 0, swap = 0, wload = 0;\n");
        let mut ports = vec![".clock(clock), .act_signed(act_signed), .swap(swap), .wload(wload)".to_string()];
        for r in 0..rows {
            decls += &format!("  reg [7:0] a{r} = 0;\n  wire signed [8:0] ao{r};\n  wire so{r};\n");
            ports.push(format!(".act_in${r}(a{r}), .act_out${r}(ao{r}), .swap_out${r}(so{r})"));
        }
        for c in 0..cols {
            decls +=
                &format!("  reg [7:0] w{c} = 0;\n  wire signed [31:0] p{c};\n  wire [7:0] wo{c};\n  wire lo{c};\n");
            ports.push(format!(
                ".wdata_in${c}(w{c}), .psum_out${c}(p{c}), .wdata_out${c}(wo{c}), .wload_out${c}(lo{c})"
            ));
        }
        let mut body = String::new();
        for (n, (cycle, psum)) in run.cycles.iter().zip(&run.psums).enumerate() {
            for (r, byte) in cycle.acts.iter().enumerate() {
                body += &format!("    a{r} = 8'h{byte:02x};\n");
            }
            for (c, weight) in cycle.wdata.iter().enumerate() {
                body += &format!("    w{c} = 8'h{:02x};\n", *weight as u8);
            }
            let bits = |b: bool| b as u8;
            body += &format!(
                "    act_signed = {}; swap = {}; wload = {};\n    #1 clock = 1;\n    #1;\n",
                bits(cycle.signed),
                bits(cycle.swap),
                bits(cycle.wload)
            );
            for (c, &value) in psum.iter().enumerate() {
                body += &format!(
                    "    if (p{c} !== 32'h{v:08x}) begin errors = errors + 1; $display(\"MISMATCH edge {n} column {c}: %0d\", p{c}); end\n",
                    v = value as u32
                );
            }
            body += "    clock = 0;\n";
        }
        format!(
            "module tb;\n{decls}  integer errors = 0;\n  top dut({});\n  initial begin\n{body}    $display(\"CHECKED {} cycles, %0d mismatches\", errors);\n    $finish;\n  end\nendmodule\n",
            ports.join(",\n    "),
            run.cycles.len()
        )
    }

    /// The emitted Verilog, run in Verilator, gives the same column sums
    /// as rust-hdl's simulation (itself checked against the i64 reference):
    /// guards against the two disagreeing on signedness or widths.
    #[test]
    fn verilog_matches_the_simulation_in_verilator() {
        let (rows, cols) = (3, 2);
        let run = run(rows, cols, 3, 4, 9);
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("top.v"), ws_array_verilog(rows, cols)).unwrap();
        std::fs::write(dir.path().join("tb.sv"), testbench(&run, rows, cols)).unwrap();
        let Some(stdout) = crate::testing::run_testbench(dir.path(), &["tb.sv", "top.v"]) else {
            return;
        };
        let summary = format!("CHECKED {} cycles, 0 mismatches", run.cycles.len());
        assert!(stdout.contains(&summary), "{stdout}");
    }
}
