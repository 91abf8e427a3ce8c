//! scikit-learn's bundled 8x8 digits (`sklearn/datasets/data/digits.csv.gz`):
//! 1797 CSV rows of 64 pixel values 0..=16 and the label 0..=9. Pixels are
//! scaled to 0..=255 as `round(v * 255 / 16)`. There is no official split: the
//! first 1437 rows are Train and the last 360 Test.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::input::read_all;
use crate::split::Split;
use crate::SplitKind;

pub const FILE: &str = "digits.csv.gz";
pub const ROWS: usize = 1797;
pub const TRAIN_ROWS: usize = 1437;
const PIXELS: usize = 64;
const CLASSES: usize = 10;
const MAX_FILE_BYTES: usize = 16 << 20;

pub fn file(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Loads the Train (first 1437 rows) or Test (last 360 rows) part.
pub fn load(dir: &Path, kind: SplitKind) -> Result<Split> {
    let path = file(dir);
    let all = parse(&path, &read_all(&path, MAX_FILE_BYTES)?)?;
    let rows: Vec<usize> = match kind {
        SplitKind::Train => (0..TRAIN_ROWS).collect(),
        SplitKind::Test => (TRAIN_ROWS..ROWS).collect(),
    };
    all.select(&rows)
}

/// Parses the whole CSV; it must have exactly 1797 rows.
fn parse(path: &Path, bytes: &[u8]) -> Result<Split> {
    let text = std::str::from_utf8(bytes).map_err(|e| DataError::format(path, format!("not UTF-8 text: {e}")))?;
    let mut images = Vec::with_capacity(ROWS * PIXELS);
    let mut labels = Vec::with_capacity(ROWS);
    for (line_no, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row = parse_row(line).map_err(|what| DataError::format(path, format!("line {}: {what}", line_no + 1)))?;
        let (pixels, label) = row.split_at(PIXELS);
        if usize::from(label[0]) >= CLASSES {
            let index = labels.len();
            return Err(DataError::LabelOutOfRange {
                path: path.into(),
                index,
                label: label[0].into(),
                classes: CLASSES,
            });
        }
        images.extend(pixels.iter().map(|&v| scale(v)));
        labels.push(u16::from(label[0]));
    }
    if labels.len() != ROWS {
        return Err(DataError::format(
            path,
            format!("expected {ROWS} rows, found {}", labels.len()),
        ));
    }
    Ok(Split {
        shape: [1, 8, 8],
        classes: CLASSES,
        images,
        labels,
    })
}

/// 65 integers (64 pixels 0..=16, then the label); errors are descriptions.
fn parse_row(line: &str) -> Result<Vec<u8>, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() != PIXELS + 1 {
        return Err(format!(
            "expected {} comma-separated values, found {}",
            PIXELS + 1,
            fields.len()
        ));
    }
    fields
        .iter()
        .enumerate()
        .map(|(col, field)| {
            let max = if col < PIXELS { 16 } else { u8::MAX };
            parse_integer(field)
                .filter(|&v| v <= max)
                .ok_or_else(|| format!("column {}: '{field}' is not an integer in 0..={max}", col + 1))
        })
        .collect()
}

/// An unsigned integer, also written as a float with a zero fraction ("16.0").
fn parse_integer(field: &str) -> Option<u8> {
    if let Ok(v) = field.parse::<u8>() {
        return Some(v);
    }
    let v: f64 = field.parse().ok()?;
    (v.fract() == 0.0 && (0.0..=255.0).contains(&v)).then_some(v as u8)
}

/// 0..=16 to 0..=255, rounding half up: round(v * 255 / 16).
fn scale(v: u8) -> u8 {
    ((u32::from(v) * 255 * 2 + 16) / 32) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{gz, write};

    /// 1797 rows; row r has pixels (r + c) % 17 and label r % 10.
    fn csv(rows: usize) -> String {
        (0..rows)
            .map(|r| {
                let mut fields: Vec<String> = (0..PIXELS).map(|c| ((r + c) % 17).to_string()).collect();
                fields.push((r % 10).to_string());
                fields.join(",") + "\n"
            })
            .collect()
    }

    #[test]
    fn scale_matches_rounding() {
        for v in 0..=16u8 {
            assert_eq!(scale(v), (f64::from(v) * 255.0 / 16.0).round() as u8, "v={v}");
        }
        assert_eq!((scale(0), scale(1), scale(16)), (0, 16, 255));
    }

    #[test]
    fn fixed_split_of_1437_and_360() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), FILE, &gz(csv(ROWS).as_bytes()));
        let train = load(dir.path(), SplitKind::Train).unwrap();
        let test = load(dir.path(), SplitKind::Test).unwrap();
        assert_eq!(
            (train.len(), test.len(), train.shape, train.classes),
            (1437, 360, [1, 8, 8], 10)
        );
        assert_eq!(train.image(1)[..3], [scale(1), scale(2), scale(3)]);
        assert_eq!((train.label(1), test.label(0)), (1, (TRAIN_ROWS % 10) as u16));
        assert_eq!(test.image(0)[0], scale((TRAIN_ROWS % 17) as u8));
    }

    #[test]
    fn accepts_float_notation_and_blank_last_line() {
        let text = csv(ROWS).replacen("0,", "0.0,", 1) + "\n";
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), FILE, &gz(text.as_bytes()));
        assert_eq!(load(dir.path(), SplitKind::Test).unwrap().len(), 360);
    }

    #[test]
    fn wrong_row_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), FILE, &gz(csv(100).as_bytes()));
        let msg = load(dir.path(), SplitKind::Train).unwrap_err().to_string();
        assert_eq!(msg, format!("{}: expected 1797 rows, found 100", path.display()));
    }

    #[test]
    fn bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "0,".repeat(64) + "3\n1,2\n",
                "line 2: expected 65 comma-separated values, found 2",
            ),
            (
                "17,".to_string() + &"0,".repeat(63) + "3\n",
                "line 1: column 1: '17' is not an integer in 0..=16",
            ),
            (
                "0,".repeat(64) + "x\n",
                "line 1: column 65: 'x' is not an integer in 0..=255",
            ),
            (
                "0,".repeat(64) + "3\n" + &"0,".repeat(64) + "10\n",
                "record 1: label 10 out of range (expected 0..10)",
            ),
        ];
        for (text, want) in cases {
            let path = write(dir.path(), FILE, &gz(text.as_bytes()));
            let msg = load(dir.path(), SplitKind::Train).unwrap_err().to_string();
            assert_eq!(msg, format!("{}: {want}", path.display()));
        }
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let msg = load(dir.path(), SplitKind::Train).unwrap_err().to_string();
        assert_eq!(msg, format!("{}: not found", file(dir.path()).display()));
    }
}
