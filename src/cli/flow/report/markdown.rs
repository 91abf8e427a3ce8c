//! The report as Markdown (charts as SVG files next to it).

use super::doc::{Block, Doc};

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn render(doc: &Doc, figure_dir: &str) -> String {
    let mut out = format!("# {}\n\n", doc.title);
    for block in &doc.blocks {
        match block {
            Block::Heading(level, text) => {
                out.push_str(&format!("{} {text}\n\n", "#".repeat(*level as usize)));
            }
            Block::Para(text) => out.push_str(&format!("{text}\n\n")),
            Block::Table { header, rows } => {
                out.push_str(&format!(
                    "| {} |\n",
                    header.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | ")
                ));
                out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
                for row in rows {
                    out.push_str(&format!(
                        "| {} |\n",
                        row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
                    ));
                }
                out.push('\n');
            }
            Block::Code(lang, text) => {
                out.push_str(&format!("```{lang}\n{}\n```\n\n", text.trim_end()));
            }
            Block::Figure { file, caption, .. } => {
                out.push_str(&format!("![{caption}]({figure_dir}/{file})\n\n"));
            }
        }
    }
    out
}
