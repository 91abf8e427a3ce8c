//! iCE40 PLL settings (SB_PLL40_CORE, SIMPLE feedback), chosen the way
//! icestorm's `icepll` chooses them: the settings whose output is closest to the
//! requested frequency within the datasheet's ranges (Lattice FPGA-TN-02052):
//!
//! ```text
//! f_pfd = f_in / (DIVR + 1)            10 ..= 133 MHz
//! f_vco = f_pfd * (DIVF + 1)          533 ..= 1066 MHz
//! f_out = f_vco / 2^DIVQ               16 ..= 275 MHz,  DIVQ 1..=6
//! ```

use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ice40Pll {
    pub divr: u8,
    pub divf: u8,
    pub divq: u8,
    /// FILTER_RANGE, from the phase detector frequency.
    pub filter_range: u8,
    /// The frequency these settings produce.
    pub achieved_mhz: f64,
}

#[derive(Debug, Error, PartialEq)]
pub enum PllError {
    #[error("no iCE40 PLL setting makes {target_mhz} MHz from {input_mhz} MHz (outputs 16..=275 MHz)")]
    Unreachable { input_mhz: f64, target_mhz: f64 },
    #[error("the iCE40 PLL makes {achieved_mhz:.3} MHz, not {target_mhz} MHz: pick a reachable target")]
    Inexact { target_mhz: f64, achieved_mhz: f64 },
}

/// Relative error tolerated between the requested and the achieved frequency:
/// the UART divider and the images/s figure use the achieved one, so only a
/// clearly different clock is refused.
const MAX_RELATIVE_ERROR: f64 = 0.005;

impl Ice40Pll {
    /// The closest setting to `target_mhz`; refused when none is within 0.5%.
    pub fn for_target(input_mhz: f64, target_mhz: f64) -> Result<Self, PllError> {
        let best = candidates(input_mhz)
            .min_by(|a, b| {
                (a.achieved_mhz - target_mhz)
                    .abs()
                    .total_cmp(&(b.achieved_mhz - target_mhz).abs())
            })
            .ok_or(PllError::Unreachable { input_mhz, target_mhz })?;
        if (best.achieved_mhz - target_mhz).abs() > MAX_RELATIVE_ERROR * target_mhz {
            return Err(PllError::Inexact {
                target_mhz,
                achieved_mhz: best.achieved_mhz,
            });
        }
        Ok(best)
    }

    /// The PLL instance: `reference` in, `clock` out, `locked`.
    pub fn verilog(&self, reference: &str, clock: &str, locked: &str) -> String {
        format!(
            "SB_PLL40_CORE #(
  .FEEDBACK_PATH(\"SIMPLE\"),
  .DIVR(4'd{divr}),
  .DIVF(7'd{divf}),
  .DIVQ(3'd{divq}),
  .FILTER_RANGE(3'd{filter})
) pll (
  .REFERENCECLK({reference}),
  .PLLOUTGLOBAL({clock}),
  .LOCK({locked}),
  .RESETB(1'b1),
  .BYPASS(1'b0)
);
",
            divr = self.divr,
            divf = self.divf,
            divq = self.divq,
            filter = self.filter_range,
        )
    }
}

/// Every valid setting for `input_mhz`.
fn candidates(input_mhz: f64) -> impl Iterator<Item = Ice40Pll> {
    (0u8..16).flat_map(move |divr| {
        let pfd = input_mhz / f64::from(divr + 1);
        (0u8..128).flat_map(move |divf| {
            let vco = pfd * f64::from(divf + 1);
            (1u8..=6).filter_map(move |divq| {
                let out = vco / f64::from(1u32 << divq);
                let valid =
                    (10.0..=133.0).contains(&pfd) && (533.0..=1066.0).contains(&vco) && (16.0..=275.0).contains(&out);
                valid.then(|| Ice40Pll {
                    divr,
                    divf,
                    divq,
                    filter_range: filter_range(pfd),
                    achieved_mhz: out,
                })
            })
        })
    })
}

/// FILTER_RANGE by phase-detector frequency, as icepll sets it.
fn filter_range(pfd_mhz: f64) -> u8 {
    match pfd_mhz {
        f if f < 17.0 => 1,
        f if f < 26.0 => 2,
        f if f < 44.0 => 3,
        f if f < 66.0 => 4,
        f if f < 101.0 => 5,
        _ => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alchitry_cu_100_to_25_mhz() {
        let pll = Ice40Pll::for_target(100.0, 25.0).unwrap();
        assert!((pll.achieved_mhz - 25.0).abs() < 1e-9, "{pll:?}");
        // Within the datasheet ranges.
        let pfd = 100.0 / f64::from(pll.divr + 1);
        let vco = pfd * f64::from(pll.divf + 1);
        assert!(
            (10.0..=133.0).contains(&pfd) && (533.0..=1066.0).contains(&vco),
            "{pll:?}"
        );
        assert_eq!(pll.filter_range, filter_range(pfd));
    }

    /// Cross-check against icestorm's icepll where it is installed.
    #[test]
    fn agrees_with_icepll() {
        for (input, target) in [(12.0, 30.0), (100.0, 25.0), (12.0, 48.0), (100.0, 40.0)] {
            let Ok(out) = std::process::Command::new("icepll")
                .args(["-i", &input.to_string(), "-o", &target.to_string()])
                .output()
            else {
                println!("SKIPPED: icepll not found on PATH");
                return;
            };
            let text = String::from_utf8_lossy(&out.stdout);
            let field = |name: &str| -> u8 {
                let line = text
                    .lines()
                    .find(|l| l.contains(name))
                    .unwrap_or_else(|| panic!("{name} in {text}"));
                let value = line.split(':').nth(1).unwrap().trim();
                value.split_whitespace().next().unwrap().parse().unwrap()
            };
            let ours = Ice40Pll::for_target(input, target).unwrap();
            let vco = input / f64::from(field("DIVR") + 1) * f64::from(field("DIVF") + 1);
            let theirs = vco / f64::from(1u32 << field("DIVQ"));
            assert!(
                (ours.achieved_mhz - theirs).abs() < 1e-6,
                "{input}->{target}: {ours:?} vs\n{text}"
            );
        }
    }

    #[test]
    fn refuses_unreachable_and_inexact_targets() {
        // A 1 MHz reference is below the phase detector's 10 MHz minimum.
        assert_eq!(
            Ice40Pll::for_target(1.0, 20.0).unwrap_err().to_string(),
            "no iCE40 PLL setting makes 20 MHz from 1 MHz (outputs 16..=275 MHz)"
        );
        assert_eq!(
            Ice40Pll::for_target(12.0, 5.0).unwrap_err().to_string(),
            "the iCE40 PLL makes 16.125 MHz, not 5 MHz: pick a reachable target"
        );
    }
}
