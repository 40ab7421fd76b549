//! Two revisions of a rule file line by line, as the console's history shows them: changed
//! lines with a few lines of context, each with its line number on either side.

use similar::{ChangeTag, TextDiff};

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// In both: its line numbers in the old and the new text.
    Same(usize, usize, String),
    Removed(usize, String),
    Added(usize, String),
    /// Unchanged lines left out between two hunks.
    Skipped(usize),
}

/// The diff of `old` and `new`, in hunks with [`CONTEXT`] lines around each change. Empty
/// when they are the same.
pub fn lines(old: &str, new: &str) -> Vec<Line> {
    let diff = TextDiff::from_lines(old, new);
    let mut out = Vec::new();
    let mut last_new_line = 0;
    for (i, group) in diff.grouped_ops(CONTEXT).iter().enumerate() {
        if let Some(first) = group.first() {
            let start = first.new_range().start;
            if start > last_new_line || (i == 0 && start > 0) {
                out.push(Line::Skipped(start - last_new_line));
            }
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let text = change.value().trim_end_matches(['\n', '\r']).to_string();
                match change.tag() {
                    ChangeTag::Equal => out.push(Line::Same(
                        change.old_index().map_or(0, |i| i + 1),
                        change.new_index().map_or(0, |i| i + 1),
                        text,
                    )),
                    ChangeTag::Delete => {
                        out.push(Line::Removed(change.old_index().map_or(0, |i| i + 1), text));
                    }
                    ChangeTag::Insert => {
                        out.push(Line::Added(change.new_index().map_or(0, |i| i + 1), text));
                    }
                }
            }
            last_new_line = op.new_range().end;
        }
    }
    let total = new.lines().count();
    if !out.is_empty() && total > last_new_line {
        out.push(Line::Skipped(total - last_new_line));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_line_with_its_context_and_numbers() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\ni\nj\n";
        let diff = lines(old, new);
        assert_eq!(
            diff,
            [
                Line::Skipped(1),
                Line::Same(2, 2, "b".into()),
                Line::Same(3, 3, "c".into()),
                Line::Same(4, 4, "d".into()),
                Line::Removed(5, "e".into()),
                Line::Added(5, "E".into()),
                Line::Same(6, 6, "f".into()),
                Line::Same(7, 7, "g".into()),
                Line::Same(8, 8, "h".into()),
                Line::Same(9, 9, "i".into()),
                Line::Added(10, "j".into()),
            ]
        );
        assert!(lines(old, old).is_empty());
    }
}
