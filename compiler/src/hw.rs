//! The hardware configuration: the single root of every accelerator parameter. The
//! compiler, the functional and cycle models, the RTL generator, the simulator and
//! the board flows all read one `HwConfig`; derived sizes and validity checks live
//! here. See docs/isa.md for what each parameter means in the machine.

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::arith::{MAX_MAC_OPERAND_BITS, MIN_BITS};

/// Largest array side the generator supports: an activation or weight word is one
/// byte per row/column, and the DMA engine (`hdl::Dma`) moves words of at most 32 bytes.
pub const MAX_ARRAY_SIDE: usize = 32;
/// Widest external-memory bus the DMA engine supports.
pub const MAX_BUS_BYTES: usize = 32;
/// Largest buffer depth: instructions address buffer words with 16 bits.
pub const MAX_BUFFER_WORDS: usize = 1 << 16;
/// Default depth of the controller's instruction queues and fetch buffer.
pub const DEFAULT_QUEUE_DEPTH: usize = 8;
/// Deepest instruction queue (the controller counts fetched instructions in 7 bits).
pub const MAX_QUEUE_DEPTH: usize = 64;

fn default_queue_depth() -> usize {
    DEFAULT_QUEUE_DEPTH
}

fn default_true() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HwConfig {
    /// Array rows: the reduction lanes (input channels consumed per cycle).
    pub rows: usize,
    /// Array columns: output channels produced per cycle.
    pub cols: usize,
    /// Widest signed weight the PEs multiply.
    pub weight_bits: u8,
    /// Widest activation fed to the array.
    pub activation_bits: u8,
    /// Accumulator width (PE partial sums and the accumulator buffer).
    pub accumulator_bits: u8,
    /// Activation buffer depth in words of `rows` bytes (one word = `rows` channels of one pixel).
    pub act_buffer_words: usize,
    /// Weight buffer depth in words of `cols` bytes (one word = one reduction row of a weight tile).
    pub weight_buffer_words: usize,
    /// Accumulator buffer depth in words of `cols` accumulators (one output pixel).
    pub acc_buffer_words: usize,
    /// Output buffer depth in words of `rows` bytes, like the activation buffer.
    pub out_buffer_words: usize,
    /// Post-processing parameter buffer: entries of one output channel (bias, multiplier, shift).
    pub param_buffer_entries: usize,
    /// External-memory data bus width in bytes (one beat per cycle at most).
    pub bus_bytes: usize,
    /// Cycles from a memory request to its first data beat.
    pub mem_latency: usize,
    /// Clock frequency used to turn cycles into seconds.
    pub clock_mhz: f64,
    /// Instructions each unit's queue holds, the running one included (a power of two,
    /// 1..=64): deeper queues let the dispatcher run further ahead; each entry is 344
    /// bits of registers (docs/rtl.md, "Area"), and depth 1 also needs no read
    /// multiplexer. 0 is the serial controller: no unit queues, the fetch buffer's head
    /// runs alone (no overlap of loads, compute and stores; the smallest design).
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
    /// Instructions the controller may have requested but not yet dispatched (a power
    /// of two, 1..=64; with `mem_latency + 2` of them the fetch streams one per cycle).
    #[serde(default = "default_queue_depth")]
    pub fetch_depth: usize,
    /// Whether the accelerator has the residual-add unit (the `add` instruction). Without
    /// it the design is smaller, and the compiler refuses models with an add layer.
    #[serde(default = "default_true")]
    pub add_unit: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HwError {
    #[error("hardware config field '{field}': {message}")]
    Invalid { field: &'static str, message: String },
    #[error("'{0}' is neither a preset (RxC, e.g. 8x8 or 4x16) nor a readable TOML file")]
    UnknownPreset(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

impl HwConfig {
    /// The preset for an `rows x cols` array: W8A8, 32-bit accumulators, buffers sized
    /// for the default small CNN at any array size, a 64-bit bus with 32-cycle latency.
    pub fn preset(rows: usize, cols: usize) -> Result<HwConfig, HwError> {
        let config = HwConfig {
            rows,
            cols,
            weight_bits: 8,
            activation_bits: 8,
            accumulator_bits: 32,
            act_buffer_words: 8192,
            weight_buffer_words: 4096,
            acc_buffer_words: 2048,
            out_buffer_words: 4096,
            param_buffer_entries: 1024,
            bus_bytes: 8,
            mem_latency: 32,
            clock_mhz: 100.0,
            queue_depth: DEFAULT_QUEUE_DEPTH,
            fetch_depth: DEFAULT_QUEUE_DEPTH,
            add_unit: true,
        };
        config.validate()?;
        Ok(config)
    }

    /// `RxC` preset, or a TOML file.
    pub fn from_arg(arg: &str) -> Result<HwConfig, HwError> {
        if let Some((r, c)) = arg.split_once(['x', 'X']) {
            if let (Ok(r), Ok(c)) = (r.trim().parse(), c.trim().parse()) {
                return HwConfig::preset(r, c);
            }
        }
        let path = Path::new(arg);
        if path.is_file() {
            return HwConfig::load(path);
        }
        Err(HwError::UnknownPreset(arg.to_string()))
    }

    pub fn load(path: &Path) -> Result<HwConfig, HwError> {
        let file_err = |message: String| HwError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(format!("cannot read: {e}")))?;
        let config: HwConfig = toml::from_str(&text).map_err(|e| file_err(e.message().to_string()))?;
        config.validate().map_err(|e| file_err(e.to_string()))?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serializes")
    }

    /// Refuse configurations no hardware could have, naming the field.
    pub fn validate(&self) -> Result<(), HwError> {
        let bits = MIN_BITS..=MAX_MAC_OPERAND_BITS;
        let side = 1..=MAX_ARRAY_SIDE;
        let depth = |w: usize| w <= MAX_BUFFER_WORDS;
        let queue = |d: usize| d.is_power_of_two() && d <= MAX_QUEUE_DEPTH;
        let checks: [(bool, &'static str, String); 15] = [
            (
                side.contains(&self.rows),
                "rows",
                format!("must be 1..={MAX_ARRAY_SIDE}"),
            ),
            (
                side.contains(&self.cols),
                "cols",
                format!("must be 1..={MAX_ARRAY_SIDE}"),
            ),
            (
                bits.contains(&self.weight_bits),
                "weight_bits",
                format!("must be {MIN_BITS}..={MAX_MAC_OPERAND_BITS}"),
            ),
            (
                bits.contains(&self.activation_bits),
                "activation_bits",
                format!("must be {MIN_BITS}..={MAX_MAC_OPERAND_BITS}"),
            ),
            (
                (16..=32).contains(&self.accumulator_bits),
                "accumulator_bits",
                "must be 16..=32".into(),
            ),
            (
                self.act_buffer_words >= 2,
                "act_buffer_words",
                "must be at least 2 (two halves for double buffering)".into(),
            ),
            (
                self.weight_buffer_words >= 2 * self.rows,
                "weight_buffer_words",
                format!("must hold two weight slices: at least 2*rows = {}", 2 * self.rows),
            ),
            (
                self.acc_buffer_words >= 2,
                "acc_buffer_words",
                "must be at least 2 (two banks)".into(),
            ),
            (
                self.out_buffer_words >= 2,
                "out_buffer_words",
                "must be at least 2 (two halves)".into(),
            ),
            (
                self.param_buffer_entries >= 2 * self.cols,
                "param_buffer_entries",
                format!("must hold two column tiles: at least 2*cols = {}", 2 * self.cols),
            ),
            (
                self.bus_bytes.is_power_of_two() && self.bus_bytes <= MAX_BUS_BYTES,
                "bus_bytes",
                format!("must be a power of two up to {MAX_BUS_BYTES}"),
            ),
            (
                self.clock_mhz > 0.0 && self.clock_mhz.is_finite(),
                "clock_mhz",
                "must be a positive number".into(),
            ),
            (
                depth(self.act_buffer_words)
                    && depth(self.weight_buffer_words)
                    && depth(self.acc_buffer_words)
                    && depth(self.out_buffer_words)
                    && depth(self.param_buffer_entries),
                "buffers",
                format!("every buffer depth must be at most {MAX_BUFFER_WORDS} words (16-bit addresses)"),
            ),
            (
                self.queue_depth == 0 || queue(self.queue_depth),
                "queue_depth",
                format!("must be 0 (serial) or a power of two, 1..={MAX_QUEUE_DEPTH}"),
            ),
            (
                queue(self.fetch_depth),
                "fetch_depth",
                format!("must be a power of two, 1..={MAX_QUEUE_DEPTH}"),
            ),
        ];
        match checks.into_iter().find(|(ok, _, _)| !ok) {
            Some((_, field, message)) => Err(HwError::Invalid { field, message }),
            None => Ok(()),
        }
    }

    /// Whether the controller runs one instruction at a time (`queue_depth` 0).
    pub fn is_serial(&self) -> bool {
        self.queue_depth == 0
    }

    /// Multiply-accumulates per cycle with every PE busy.
    pub fn peak_macs_per_cycle(&self) -> usize {
        self.rows * self.cols
    }

    /// Bytes of on-chip memory, per buffer: (activation, weight, accumulator, output, params).
    pub fn buffer_bytes(&self) -> [usize; 5] {
        [
            self.act_buffer_words * self.rows,
            self.weight_buffer_words * self.cols,
            self.acc_buffer_words * self.cols * self.accumulator_bits as usize / 8,
            self.out_buffer_words * self.rows,
            self.param_buffer_entries * PARAM_ENTRY_BYTES,
        ]
    }
}

/// Bytes of one post-processing parameter entry: i32 bias, u16 multiplier, u8 shift, 1 pad.
pub const PARAM_ENTRY_BYTES: usize = 8;

impl FromStr for HwConfig {
    type Err = HwError;

    fn from_str(s: &str) -> Result<Self, HwError> {
        HwConfig::from_arg(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_any_rxc() {
        let hw: HwConfig = "8x8".parse().unwrap();
        assert_eq!((hw.rows, hw.cols, hw.peak_macs_per_cycle()), (8, 8, 64));
        let hw: HwConfig = "3x16".parse().unwrap();
        assert_eq!((hw.rows, hw.cols), (3, 16));
        assert_eq!("1x1".parse::<HwConfig>().unwrap().rows, 1);
    }

    #[test]
    fn impossible_configs_name_the_field() {
        let err = "0x8".parse::<HwConfig>().unwrap_err().to_string();
        assert_eq!(err, "hardware config field 'rows': must be 1..=32");
        let err = "8x33".parse::<HwConfig>().unwrap_err().to_string();
        assert!(err.contains("'cols'"), "{err}");
        let hw = HwConfig {
            bus_bytes: 6,
            ..HwConfig::preset(2, 2).unwrap()
        };
        assert!(hw.validate().unwrap_err().to_string().contains("'bus_bytes'"));
        let hw = HwConfig {
            weight_buffer_words: 15,
            ..HwConfig::preset(8, 2).unwrap()
        };
        assert!(hw.validate().unwrap_err().to_string().contains("at least 2*rows = 16"));
        assert!(matches!("banana".parse::<HwConfig>(), Err(HwError::UnknownPreset(_))));
        for (queue_depth, fetch_depth, field) in [
            (3, 8, "'queue_depth'"),
            (8, 128, "'fetch_depth'"),
            (5, 8, "'queue_depth'"),
            (8, 0, "'fetch_depth'"),
            (8, 3, "'fetch_depth'"),
        ] {
            let hw = HwConfig {
                queue_depth,
                fetch_depth,
                ..HwConfig::preset(2, 2).unwrap()
            };
            assert!(
                hw.validate().unwrap_err().to_string().contains(field),
                "{queue_depth} {fetch_depth}"
            );
        }
    }

    /// Files written before the queue depths were configurable still load, with the
    /// depths the hardware had then.
    #[test]
    fn files_without_queue_depths_get_the_defaults() {
        let hw = HwConfig::preset(4, 4).unwrap();
        let old: String = hw
            .to_toml()
            .lines()
            .filter(|l| !l.contains("_depth"))
            .map(|l| l.to_string() + "\n")
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hw.toml");
        std::fs::write(&path, old).unwrap();
        let loaded = HwConfig::load(&path).unwrap();
        assert_eq!(
            (loaded.queue_depth, loaded.fetch_depth),
            (DEFAULT_QUEUE_DEPTH, DEFAULT_QUEUE_DEPTH)
        );
        assert_eq!(loaded, hw);
    }

    /// Files written before the add unit was optional describe hardware that has it.
    #[test]
    fn files_without_add_unit_have_the_add_unit() {
        let hw = HwConfig::preset(2, 2).unwrap();
        let old = hw.to_toml().replace("add_unit = true\n", "");
        assert!(!old.contains("add_unit"), "{old}");
        let loaded: HwConfig = toml::from_str(&old).unwrap();
        assert!(loaded.add_unit);
        assert_eq!(loaded, hw);
    }

    #[test]
    fn toml_files_round_trip_and_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hw.toml");
        let hw = HwConfig {
            rows: 4,
            cols: 16,
            mem_latency: 7,
            ..HwConfig::preset(4, 16).unwrap()
        };
        std::fs::write(&path, hw.to_toml()).unwrap();
        assert_eq!(HwConfig::from_arg(path.to_str().unwrap()).unwrap(), hw);
        std::fs::write(
            &path,
            hw.to_toml().replace("accumulator_bits = 32", "accumulator_bits = 40"),
        )
        .unwrap();
        let err = HwConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("hw.toml") && err.contains("'accumulator_bits'"), "{err}");
        std::fs::write(&path, "rows = 2\n").unwrap();
        assert!(HwConfig::load(&path).unwrap_err().to_string().contains("missing field"));
    }

    #[test]
    fn buffer_sizes_follow_the_array() {
        let hw = HwConfig::preset(8, 4).unwrap();
        assert_eq!(
            hw.buffer_bytes(),
            [8192 * 8, 4096 * 4, 2048 * 4 * 4, 4096 * 8, 1024 * 8]
        );
    }
}
