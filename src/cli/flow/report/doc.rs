//! A small document model the report is built in once and rendered twice
//! (Markdown and self-contained HTML).

/// One block of the report.
pub enum Block {
    Heading(u8, String),
    /// A paragraph; `code` spans in backquotes are kept as such in Markdown and
    /// rendered as <code> in HTML.
    Para(String),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// Preformatted text with a language hint (sh, toml).
    Code(&'static str, String),
    /// A chart: its file name (written next to report.md) and SVG text (inlined in HTML).
    Figure {
        file: String,
        caption: String,
        svg: String,
    },
}

#[derive(Default)]
pub struct Doc {
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Doc {
    pub fn h2(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Heading(2, text.into()));
    }

    pub fn h3(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Heading(3, text.into()));
    }

    pub fn para(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Para(text.into()));
    }

    pub fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        self.blocks.push(Block::Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows,
        });
    }

    pub fn code(&mut self, lang: &'static str, text: impl Into<String>) {
        self.blocks.push(Block::Code(lang, text.into()));
    }

    pub fn figure(&mut self, file: impl Into<String>, caption: impl Into<String>, svg: String) {
        self.blocks.push(Block::Figure {
            file: file.into(),
            caption: caption.into(),
            svg,
        });
    }
}

/// `x` as a percentage with two decimals.
pub fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// `x` as a percentage, or a dash.
pub fn pct_or_dash(x: Option<f64>) -> String {
    x.map_or("–".into(), pct)
}

/// A count with thin thousands separators (1,234,567).
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Signed relative difference `(measured - predicted) / measured` in percent.
pub fn rel(measured: f64, predicted: f64) -> String {
    if measured == 0.0 {
        return "–".into();
    }
    format!("{:+.2}%", 100.0 * (measured - predicted) / measured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format() {
        assert_eq!(count(761649), "761,649");
        assert_eq!(count(12), "12");
        assert_eq!(pct(0.91491), "91.49%");
        assert_eq!(rel(100.0, 100.0), "+0.00%");
    }
}
