//! Rendering predictions as a table, JSON or CSV.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    predict::{FileResult, Outcome},
    read::{ReadNumber, ReadOutcome, ReadResult},
};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON document: an array of per-file objects.
    Json,
    /// Comma-separated values with a header row.
    Csv,
}

/// How to annotate predictions.
#[derive(Debug, Clone, Copy)]
pub struct Annotations {
    /// Show the next likeliest digits after the first, up to this many in all.
    pub top_k: usize,
    /// Flag predictions below this confidence as uncertain.
    pub min_confidence: Option<f32>,
}

#[derive(Serialize)]
struct Row<'a> {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    digit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    top: Vec<Candidate>,
    uncertain: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    digits_side_by_side: Option<usize>,
    /// Nothing in the image could be a digit (`digit` is then absent).
    no_digit: bool,
    /// The digit runs into the image's edge.
    cut_by_frame: bool,
    /// The ink could be either way round: read both ways.
    polarity_uncertain: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize, Clone, Copy)]
struct Candidate {
    digit: u32,
    probability: f32,
}

fn row<'a>(result: &'a FileResult, notes: &Annotations) -> Row<'a> {
    let path = result.path.display().to_string();
    match &result.outcome {
        Outcome::Predicted { digit, confidence, probabilities, digits_side_by_side, notes: found } => {
            let mut ranked: Vec<Candidate> =
                probabilities.iter().enumerate().map(|(d, &p)| Candidate { digit: d as u32, probability: p }).collect();
            ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
            ranked.truncate(if notes.top_k > 1 && !found.no_digit { notes.top_k } else { 0 });
            Row {
                path,
                digit: (!found.no_digit).then_some(*digit),
                confidence: Some(*confidence),
                top: ranked,
                uncertain: notes.min_confidence.is_some_and(|m| *confidence < m)
                    || digits_side_by_side.is_some()
                    || found.polarity_uncertain
                    || found.cut_by_frame,
                digits_side_by_side: *digits_side_by_side,
                no_digit: found.no_digit,
                cut_by_frame: found.cut_by_frame,
                polarity_uncertain: found.polarity_uncertain,
                error: None,
            }
        }
        Outcome::Failed { error } => Row {
            path,
            digit: None,
            confidence: None,
            top: Vec::new(),
            uncertain: false,
            digits_side_by_side: None,
            no_digit: false,
            cut_by_frame: false,
            polarity_uncertain: false,
            error: Some(error),
        },
    }
}

/// Renders all results in `format`.
pub fn render(results: &[FileResult], format: Format, notes: &Annotations) -> String {
    let rows: Vec<Row> = results.iter().map(|r| row(r, notes)).collect();
    match format {
        Format::Json => serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n",
        Format::Csv => csv(&rows),
        Format::Table => table(&rows),
    }
}

fn top_text(top: &[Candidate]) -> String {
    top.iter().map(|c| format!("{}:{:.3}", c.digit, c.probability)).collect::<Vec<_>>().join(" ")
}

fn table(rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.path.chars().count()).max().unwrap_or(4).max(4);
    let with_top = rows.iter().any(|r| !r.top.is_empty());
    let mut out = String::new();
    let _ = write!(out, "{:width$}  digit  confidence", "path");
    if with_top {
        let _ = write!(out, "  top");
    }
    out.push('\n');
    for r in rows {
        match (r.digit, r.confidence, r.error) {
            (None, Some(_), None) if r.no_digit => {
                let _ = write!(
                    out,
                    "{:width$}  {:>5}  {:>10.4}  (no digit: nothing stands out from the paper)",
                    r.path, "-", 0.0
                );
            }
            (Some(d), Some(c), _) => {
                let _ = write!(out, "{:width$}  {d:>5}  {c:>10.4}", r.path);
                if with_top {
                    let _ = write!(out, "  {}", top_text(&r.top));
                }
                if let Some(digits) = r.digits_side_by_side {
                    let _ =
                        write!(out, "  (uncertain: {digits} digits side by side; `mnist-client read` reads numbers)");
                } else if r.cut_by_frame {
                    out.push_str("  (uncertain: the digit runs into the edge of the image)");
                } else if r.polarity_uncertain {
                    out.push_str("  (uncertain: light ink on dark or dark on light, read both ways)");
                } else if r.uncertain {
                    out.push_str("  (uncertain)");
                }
            }
            (_, _, error) => {
                let _ = write!(out, "{:width$}  error: {}", r.path, error.unwrap_or("unknown"));
            }
        }
        out.push('\n');
    }
    out
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "path,digit,confidence,top,uncertain,digits_side_by_side,no_digit,cut_by_frame,polarity_uncertain,error\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.path),
            r.digit.map(|d| d.to_string()).unwrap_or_default(),
            r.confidence.map(|c| format!("{c:.6}")).unwrap_or_default(),
            csv_field(&top_text(&r.top)),
            r.uncertain,
            r.digits_side_by_side.unwrap_or(1),
            r.no_digit,
            r.cut_by_frame,
            r.polarity_uncertain,
            csv_field(r.error.unwrap_or("")),
        );
    }
    out
}

/// How to annotate readings of numbers.
#[derive(Debug, Clone, Copy)]
pub struct ReadAnnotations {
    /// Flag readings below this confidence as uncertain.
    pub min_confidence: Option<f32>,
    /// Flag readings with another number of digits.
    pub expected_digits: Option<usize>,
}

impl ReadAnnotations {
    /// Why a reading is uncertain, if it is.
    pub fn doubt(&self, number: &ReadNumber) -> Option<String> {
        if let Some(cut_short) = &number.cut_short {
            return Some(cut_short.clone());
        }
        let (length, confidence) = (number.text.chars().count(), number.confidence);
        if let Some(expected) = self.expected_digits {
            if length != expected {
                return Some(format!("{length} digits, not {expected}"));
            }
            if number.best_length != expected {
                return Some(format!("{expected} digits as asked, but the marks read best as {}", number.best_length));
            }
        }
        self.min_confidence.filter(|&m| confidence < m).map(|m| format!("confidence below {m}"))
    }
}

#[derive(Serialize)]
struct ReadRow<'a> {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<f32>,
    uncertain: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    doubt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digits: Option<&'a [crate::read::NumberDigit]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    best_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// Renders the readings of numbers in `format`: one row per file with its
/// path, text and confidence (JSON: each digit's confidence and box nested).
pub fn render_readings(results: &[ReadResult], format: Format, notes: &ReadAnnotations) -> String {
    let rows: Vec<ReadRow> = results
        .iter()
        .map(|result| {
            let path = result.path.display().to_string();
            match &result.outcome {
                ReadOutcome::Read(number) => {
                    let doubt = notes.doubt(number);
                    ReadRow {
                        path,
                        text: Some(&number.text),
                        confidence: Some(number.confidence),
                        uncertain: doubt.is_some(),
                        doubt,
                        digits: Some(&number.digits),
                        best_length: Some(number.best_length),
                        error: None,
                    }
                }
                ReadOutcome::Failed { error } => ReadRow {
                    path,
                    text: None,
                    confidence: None,
                    uncertain: false,
                    doubt: None,
                    digits: None,
                    best_length: None,
                    error: Some(error),
                },
            }
        })
        .collect();
    match format {
        Format::Json => serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n",
        Format::Csv => {
            let mut out = String::from("path,text,confidence,digit_confidences,uncertain,error\n");
            for r in &rows {
                let digits = r.digits.unwrap_or_default();
                let confidences: Vec<String> = digits.iter().map(|d| format!("{:.4}", d.confidence)).collect();
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{}",
                    csv_field(&r.path),
                    r.text.unwrap_or_default(),
                    r.confidence.map(|c| format!("{c:.6}")).unwrap_or_default(),
                    confidences.join(" "),
                    r.uncertain,
                    csv_field(r.error.unwrap_or("")),
                );
            }
            out
        }
        Format::Table => {
            let width = rows.iter().map(|r| r.path.chars().count()).max().unwrap_or(4).max(4);
            let text_width = rows.iter().filter_map(|r| r.text.map(str::len)).max().unwrap_or(4).max(4);
            let mut out = format!("{:width$}  {:>text_width$}  confidence\n", "path", "text");
            for r in &rows {
                match (r.text, r.confidence) {
                    (Some(text), Some(confidence)) => {
                        let shown = if text.is_empty() { "-" } else { text };
                        let _ = write!(out, "{:width$}  {shown:>text_width$}  {confidence:>10.4}", r.path);
                        if let Some(doubt) = &r.doubt {
                            let _ = write!(out, "  (uncertain: {doubt})");
                        }
                    }
                    _ => {
                        let _ = write!(out, "{:width$}  error: {}", r.path, r.error.unwrap_or("unknown"));
                    }
                }
                out.push('\n');
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn results() -> Vec<FileResult> {
        let mut p = vec![0.01f32; 10];
        p[7] = 0.55;
        p[1] = 0.37;
        vec![
            FileResult {
                path: PathBuf::from("a, b.png"),
                outcome: Outcome::Predicted {
                    digit: 7,
                    confidence: 0.55,
                    probabilities: p,
                    digits_side_by_side: None,
                    notes: Default::default(),
                },
            },
            FileResult { path: PathBuf::from("bad.png"), outcome: Outcome::Failed { error: "cannot decode".into() } },
        ]
    }

    #[test]
    fn table_flags_uncertain_and_shows_errors() {
        let text = render(&results(), Format::Table, &Annotations { top_k: 2, min_confidence: Some(0.9) });
        assert!(text.contains("7:0.550 1:0.370"), "{text}");
        assert!(text.contains("(uncertain)"));
        let row = text.lines().find(|l| l.starts_with("bad.png")).unwrap();
        assert!(row.ends_with("error: cannot decode"), "{row}");
    }

    #[test]
    fn csv_quotes_fields_and_json_parses() {
        let notes = Annotations { top_k: 1, min_confidence: None };
        let text = render(&results(), Format::Csv, &notes);
        assert!(text.starts_with(
            "path,digit,confidence,top,uncertain,digits_side_by_side,no_digit,cut_by_frame,polarity_uncertain,error\n"
        ));
        assert!(text.contains("\"a, b.png\",7,0.550000,,false,1,"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&render(&results(), Format::Json, &notes)).unwrap();
        assert_eq!(json[0]["digit"], 7);
        assert_eq!(json[1]["error"], "cannot decode");
    }
}
