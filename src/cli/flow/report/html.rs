//! The report as one self-contained HTML page: styles and SVG charts inline, no
//! external resources.

use super::doc::{Block, Doc};

const STYLE: &str =
    "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}\
table{border-collapse:collapse;margin:0.5em 0 1.2em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}\
pre{background:#f6f6f6;padding:0.8em;overflow-x:auto;font-size:90%}code{background:#f6f6f6;padding:0 3px}\
figure{margin:1em 0}figcaption{font-size:90%;color:#555}";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Escaped text with `code` spans and **bold** spans as HTML.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in escape(s).split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<code>{part}</code>"));
        } else {
            for (j, p) in part.split("**").enumerate() {
                if j % 2 == 1 {
                    out.push_str(&format!("<b>{p}</b>"));
                } else {
                    out.push_str(p);
                }
            }
        }
    }
    out
}

pub fn render(doc: &Doc) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&doc.title),
        escape(&doc.title)
    );
    for block in &doc.blocks {
        match block {
            Block::Heading(level, text) => out.push_str(&format!("<h{level}>{}</h{level}>\n", inline(text))),
            Block::Para(text) => out.push_str(&format!("<p>{}</p>\n", inline(text))),
            Block::Table { header, rows } => {
                out.push_str("<table><tr>");
                for h in header {
                    out.push_str(&format!("<th>{}</th>", inline(h)));
                }
                out.push_str("</tr>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for c in row {
                        out.push_str(&format!("<td>{}</td>", inline(c)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table>\n");
            }
            Block::Code(_, text) => out.push_str(&format!("<pre>{}</pre>\n", escape(text.trim_end()))),
            Block::Figure { caption, svg, .. } => {
                out.push_str(&format!(
                    "<figure>{svg}<figcaption>{}</figcaption></figure>\n",
                    inline(caption)
                ));
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_marks_code_and_escapes() {
        assert_eq!(inline("run `a<b` **now**"), "run <code>a&lt;b</code> <b>now</b>");
    }
}
