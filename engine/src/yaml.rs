//! A YAML tree that remembers where every node was written.
//!
//! Operators edit rule files on a live line; every problem must point at its line and column,
//! all problems at once, and a Rhai syntax error inside a YAML string must point into the YAML
//! file. serde-based YAML readers stop at the first error and forget positions, so rule files
//! are read into this small marked tree and walked by hand.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::diagnostic::{Diagnostics, Position, suggestion};

/// One YAML node and where it starts in the file.
#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    /// Where the node starts (the quote or `|` of a scalar).
    pub position: Position,
    /// Where the scalar's text itself starts, for mapping positions inside it.
    content: Position,
    style: Style,
    /// Unquoted, so `12` and `true` are a number and a boolean, not text.
    plain: bool,
}

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Inline,
    Literal,
    Folded,
    Collection,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// How the node reads in an error message: "expected text, found a list".
    pub fn kind_name(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Scalar(_) => "text",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// Maps a 1-based line and column inside this scalar's text to the file.
    ///
    /// Exact for single-line plain and quoted scalars and for literal blocks (`|`); for folded
    /// blocks and multi-line flow scalars it points at the right line start.
    pub fn text_position(&self, line: usize, column: usize) -> Position {
        let (line, column) = (line.max(1), column.max(1));
        match self.style {
            Style::Literal => Position::new(
                self.content.line + line - 1,
                self.content.column + column - 1,
            ),
            Style::Inline | Style::Folded | Style::Collection if line == 1 => {
                Position::new(self.content.line, self.content.column + column - 1)
            }
            _ => Position::new(self.content.line + line - 1, 1),
        }
    }

    /// The node at a dotted path such as `hooks.auth.allow_ips[0]`, as serde names fields.
    pub fn find(&self, path: &str) -> Option<&Node> {
        let mut node = self;
        for segment in path.split('.') {
            let (key, indices) = match segment.find('[') {
                Some(i) => (&segment[..i], &segment[i..]),
                None => (segment, ""),
            };
            if !key.is_empty() {
                node = node
                    .as_map()?
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(key))
                    .map(|(_, v)| v)?;
            }
            for index in indices.split('[').filter(|i| !i.is_empty()) {
                let index: usize = index.trim_end_matches(']').parse().ok()?;
                node = node.as_seq()?.get(index)?;
            }
        }
        Some(node)
    }

    /// The first scalar under this node whose text contains `needle`.
    pub fn find_text(&self, needle: &str) -> Option<&Node> {
        match &self.value {
            Value::Scalar(s) if s.contains(needle) => Some(self),
            Value::Seq(items) => items.iter().find_map(|n| n.find_text(needle)),
            Value::Map(entries) => entries.iter().find_map(|(_, v)| v.find_text(needle)),
            _ => None,
        }
    }

    /// Converts to JSON, for facts and call data written in test files.
    ///
    /// Plain scalars follow YAML's core schema: `true`, `12`, `0.5` are not text.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Scalar(s) if self.plain => plain_scalar_json(s),
            Value::Scalar(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

fn plain_scalar_json(s: &str) -> serde_json::Value {
    use serde_json::Value as J;
    match s {
        "true" | "True" | "TRUE" => J::Bool(true),
        "false" | "False" | "FALSE" => J::Bool(false),
        _ => {
            if let Ok(i) = s.parse::<i64>() {
                J::from(i)
            } else if let Some(f) = s.parse::<f64>().ok().filter(|f| f.is_finite()) {
                J::from(f)
            } else {
                J::String(s.to_string())
            }
        }
    }
}

/// A YAML syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: Position,
    pub message: String,
}

/// Parses the first YAML document of `text`. An empty file is `Value::Null`.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| SyntaxError {
            position: Position::new(e.marker().line(), e.marker().col() + 1),
            message: e.info().to_string(),
        })?;
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        position: start(span),
                        message: "only one YAML document per file: remove the second `---`".into(),
                    });
                }
            }
            Event::Scalar(value, style, anchor, _tag) => {
                let node = scalar(value.into_owned(), style, span);
                builder.add(node, anchor);
            }
            Event::SequenceStart(anchor, _) => builder.open(Frame::Seq(Vec::new()), anchor, span),
            Event::MappingStart(anchor, _) => {
                builder.open(Frame::Map(Vec::new(), None), anchor, span)
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close(),
            Event::Alias(id) => {
                let node = builder.anchors.get(&id).cloned().unwrap_or(Node {
                    value: Value::Null,
                    position: start(span),
                    content: start(span),
                    style: Style::Inline,
                    plain: true,
                });
                builder.add(node, 0);
            }
            _ => {}
        }
    }
    Ok(builder.root.unwrap_or(Node {
        value: Value::Null,
        position: Position::START,
        content: Position::START,
        style: Style::Inline,
        plain: true,
    }))
}

fn start(span: Span) -> Position {
    Position::new(span.start.line(), span.start.col() + 1)
}

fn scalar(text: String, style: ScalarStyle, span: Span) -> Node {
    let position = start(span);
    let plain = style == ScalarStyle::Plain;
    let (style, content) = match style {
        ScalarStyle::Plain => (Style::Inline, position),
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => (
            Style::Inline,
            Position::new(position.line, position.column + 1),
        ),
        ScalarStyle::Literal | ScalarStyle::Folded => {
            // The parser's span of a block scalar starts at its first content character.
            let block = if style == ScalarStyle::Literal {
                Style::Literal
            } else {
                Style::Folded
            };
            (block, position)
        }
    };
    let value = if plain && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
        Value::Null
    } else {
        Value::Scalar(text)
    };
    Node {
        value,
        position,
        content,
        style,
        plain,
    }
}

enum Frame {
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<(Frame, usize, Position)>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
}

impl Builder {
    fn open(&mut self, frame: Frame, anchor: usize, span: Span) {
        self.stack.push((frame, anchor, start(span)));
    }

    fn close(&mut self) {
        let Some((frame, anchor, position)) = self.stack.pop() else {
            return;
        };
        let value = match frame {
            Frame::Seq(items) => Value::Seq(items),
            Frame::Map(entries, _) => Value::Map(entries),
        };
        let node = Node {
            value,
            position,
            content: position,
            style: Style::Collection,
            plain: false,
        };
        self.add(node, anchor);
    }

    fn add(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some((Frame::Seq(items), ..)) => items.push(node),
            Some((Frame::Map(entries, pending), ..)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

/// A mapping whose keys were checked against the keys a section knows.
///
/// Unknown keys (with a "did you mean"), duplicate keys and non-text keys are reported once,
/// here, so every section reports them the same way.
pub struct Fields<'n> {
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    /// Checks `node` is a mapping of known keys; `section` names it in messages ("rule", "test").
    pub fn read(
        node: &'n Node,
        known: &[&str],
        section: &str,
        diags: &mut Diagnostics<'_>,
    ) -> Option<Self> {
        let Some(map) = node.as_map() else {
            diags.error(
                node.position,
                format!(
                    "{section} must be a mapping of keys ({}), found {}",
                    known.join(", "),
                    node.kind_name()
                ),
            );
            return None;
        };
        let mut entries: Vec<(&str, &Node, &Node)> = Vec::with_capacity(map.len());
        for (key, value) in map {
            let Some(name) = key.as_str() else {
                diags.error(
                    key.position,
                    format!("{section}: keys must be text, found {}", key.kind_name()),
                );
                continue;
            };
            if !known.contains(&name) {
                let hint = match suggestion(name, known.iter().copied()) {
                    Some(s) => format!("did you mean {s}?"),
                    None => format!("known keys: {}", known.join(", ")),
                };
                diags.error(
                    key.position,
                    format!("unknown key `{name}` in {section}; {hint}"),
                );
                continue;
            }
            if let Some((_, first, _)) = entries.iter().find(|(n, ..)| *n == name) {
                diags.error(
                    key.position,
                    format!(
                        "duplicate key `{name}` in {section} (first at line {}); remove one",
                        first.position.line
                    ),
                );
                continue;
            }
            entries.push((name, key, value));
        }
        Some(Fields { entries })
    }

    /// The value of `key`, if present and not null.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(n, ..)| *n == key)
            .map(|(.., v)| *v)
            .filter(|v| !v.is_null())
    }

    /// The position of `key` itself, for "missing" and "conflicting" messages.
    pub fn key_position(&self, key: &str) -> Option<Position> {
        self.entries
            .iter()
            .find(|(n, ..)| *n == key)
            .map(|(_, k, _)| k.position)
    }

    /// The text of `key`, reporting a non-text value.
    pub fn text(&self, key: &str, section: &str, diags: &mut Diagnostics<'_>) -> Option<&'n str> {
        let node = self.get(key)?;
        match node.as_str() {
            Some(s) => Some(s),
            None => {
                diags.error(
                    node.position,
                    format!(
                        "{section}: `{key}` must be text, found {}",
                        node.kind_name()
                    ),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn positions_are_one_based_line_and_column() {
        let doc = parse("a: 1\nrules:\n  - name: x\n    when: 'call.x == 1'\n").unwrap();
        let map = doc.as_map().unwrap();
        let rules = map[1].1.as_seq().unwrap();
        let rule = rules[0].as_map().unwrap();
        assert_eq!(rule[1].0.position, Position::new(4, 5));
        assert_eq!(rule[1].1.position, Position::new(4, 11));
        // Column 3 of the expression text is the third character after the quote.
        assert_eq!(rule[1].1.text_position(1, 3), Position::new(4, 14));
    }

    #[test]
    fn literal_block_lines_map_into_the_file() {
        let doc = parse("script: |\n  let a = 1;\n    a + b\n").unwrap();
        let node = &doc.as_map().unwrap()[0].1;
        assert_eq!(node.as_str(), Some("let a = 1;\n  a + b\n"));
        assert_eq!(node.text_position(2, 5), Position::new(3, 7));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.position.line >= 2, "{err:?}");
    }

    #[test]
    fn empty_and_null() {
        assert!(parse("").unwrap().is_null());
        assert!(parse("~\n").unwrap().is_null());
        let doc = parse("a:\nb: ''\n").unwrap();
        let map = doc.as_map().unwrap();
        assert!(map[0].1.is_null());
        assert_eq!(map[1].1.as_str(), Some(""));
    }

    #[test]
    fn fields_report_unknown_and_duplicate_keys() {
        let doc = parse("name: a\nrout: b\nname: c\n").unwrap();
        let path = Path::new("f.yaml");
        let mut diags = Diagnostics::new(path);
        let fields = Fields::read(&doc, &["name", "route"], "rule", &mut diags).unwrap();
        assert_eq!(fields.get("name").and_then(Node::as_str), Some("a"));
        let found: Vec<String> = diags.into_vec().iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            vec![
                "f.yaml:2:1: unknown key `rout` in rule; did you mean `route`?",
                "f.yaml:3:1: duplicate key `name` in rule (first at line 1); remove one",
            ]
        );
    }

    #[test]
    fn find_by_path() {
        let doc = parse("hooks:\n  auth:\n    allow_ips: [a, b]\n").unwrap();
        assert_eq!(
            doc.find("hooks.auth.allow_ips[1]").map(|n| n.position),
            Some(Position::new(3, 20))
        );
        assert!(doc.find("hooks.nope").is_none());
    }

    #[test]
    fn plain_scalars_follow_the_core_schema_in_json() {
        let doc = parse("a: 12\nb: '12'\nc: true\nd: x\n").unwrap();
        assert_eq!(
            doc.to_json(),
            serde_json::json!({"a": 12, "b": "12", "c": true, "d": "x"})
        );
    }
}
