//! A YAML tree that remembers where every node was written.
//!
//! Operators edit rule files on a live line; every problem must point at its line and column,
//! all problems at once, and a Rhai syntax error inside a YAML string must point into the YAML
//! file. serde-based YAML readers stop at the first error and forget positions, so rule files
//! are read into this small marked tree and walked by hand.
//!
//! Reading is bounded: input size, nesting depth and the number of nodes the tree holds once
//! every alias is expanded are capped ([`MAX_INPUT_BYTES`], [`MAX_DEPTH`], [`MAX_NODES`]), so a
//! few hundred bytes of nested aliases (a "billion laughs") are refused at once instead of
//! growing the process until it dies. An alias shares its anchor's children, so memory follows
//! the text read, not the expanded tree.

use std::collections::HashMap;
use std::sync::Arc;

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

/// A node's value. Children are shared, so an alias costs one pointer, not a copy.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Scalar(String),
    Seq(Arc<[Node]>),
    Map(Arc<[(Node, Node)]>),
}

/// Largest YAML text read (16 MiB): about 140,000 rules, far beyond any real rule set.
pub const MAX_INPUT_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of lists and mappings, aliases expanded; a rule file needs about 6.
pub const MAX_DEPTH: usize = 64;
/// Most nodes (scalars, lists, mappings) a document may hold with its aliases expanded.
/// An 80,000-rule file has about 650,000; a "billion laughs" has 10⁹.
pub const MAX_NODES: usize = 2_000_000;

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
            Value::Seq(items) => Some(&items[..]),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(&entries[..]),
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
        let (mut line, mut column) = (line.max(1), column.max(1));
        // Rhai points past the text's last line break (a `|` block ends in one) for an error
        // found at the end: that is the end of the text's last line.
        let text = self.as_str().unwrap_or("");
        let lines = text.lines().count().max(1);
        if line > lines {
            line = lines;
            column = text.lines().last().map_or(0, |l| l.chars().count()) + 1;
        }
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

/// Why a YAML text was not read: a syntax error or a limit, with where it was found.
///
/// Show it with `to_string()`: "YAML syntax: …" for a syntax error, the limit and its fix
/// otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: Position,
    /// What the YAML reader said, or which limit was hit and the fix.
    pub message: String,
    /// A limit (size, depth, nodes) was hit: the text may be valid YAML.
    pub limit: bool,
}

impl SyntaxError {
    fn syntax(position: Position, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if let Some(hint) = hint(&message) {
            message.push_str("; ");
            message.push_str(hint);
        }
        SyntaxError {
            position,
            message,
            limit: false,
        }
    }

    fn limit(position: Position, message: String) -> Self {
        SyntaxError {
            position,
            message,
            limit: true,
        }
    }
}

/// The fix for the YAML traps rule authors fall into: an expression that YAML reads as
/// something else because it is not quoted.
fn hint(message: &str) -> Option<&'static str> {
    let quote = if message.contains("scanning a tag") {
        "a value starting with `!` is a YAML tag: quote the expression, e.g. when: '!open_hours(\"mon-fri 09:00-17:00\")'"
    } else if message.contains("scanning an alias")
        || message.contains("scanning an anchor")
        || message.contains("unknown anchor")
    {
        "a value starting with `*` or `&` is a YAML alias or anchor: quote the expression"
    } else if message.contains("cannot start any token") || message.contains("unexpected character")
    {
        "a value starting with `@`, `` ` `` or `%` must be quoted: put the expression in single quotes"
    } else if message.contains("mapping values are not allowed") {
        "a `: ` inside a value starts a new key: quote the value (e.g. route: 'a: b' or when: 'x == \"a: b\"')"
    } else if message.contains("tab") {
        "indent with spaces: YAML does not take tabs for indentation"
    } else {
        return None;
    };
    Some(quote)
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.limit {
            f.write_str(&self.message)
        } else {
            write!(f, "YAML syntax: {}", self.message)
        }
    }
}

/// Parses the first YAML document of `text`. An empty file is `Value::Null`.
///
/// Refuses texts over [`MAX_INPUT_BYTES`], nesting deeper than [`MAX_DEPTH`] and documents
/// whose aliases expand to more than [`MAX_NODES`] nodes, pointing at the node that crossed
/// the line. The check is made before an alias is added, so a bomb stops at its first
/// oversized alias.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    parse_within(text, MAX_NODES)
}

/// [`parse`] with another node limit, so tests need not write millions of nodes.
fn parse_within(text: &str, max_nodes: usize) -> Result<Node, SyntaxError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(SyntaxError::limit(
            Position::START,
            format!(
                "the file is larger than {} MiB, the most belroute reads as YAML; split it into several files",
                MAX_INPUT_BYTES / (1024 * 1024)
            ),
        ));
    }
    let mut builder = Builder {
        max_nodes,
        ..Builder::default()
    };
    let mut documents = 0;
    let mut end: Option<Position> = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let at = Position::new(e.marker().line(), e.marker().col() + 1);
            SyntaxError::syntax(at.min(end_of(text)), e.info())
        })?;
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError::syntax(
                        start(span),
                        "only one YAML document per file: remove the second `---`",
                    ));
                }
            }
            Event::Scalar(value, style, anchor, _tag) => {
                builder.grow(Size::ONE, false, span)?;
                let mut node = scalar(value.into_owned(), style, span);
                // An empty key or value on the last line (`key:`, `?`) is placed on the line
                // after it, like an error found at the end.
                let end = *end.get_or_insert_with(|| end_of(text));
                if node.position > end {
                    (node.position, node.content) = (end, end);
                }
                builder.add(node, Size::ONE, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                builder.open(Frame::Seq(Vec::new()), anchor, span)?
            }
            Event::MappingStart(anchor, _) => {
                builder.open(Frame::Map(Vec::new(), None), anchor, span)?
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close(),
            Event::Alias(id) => {
                let (node, size) = match builder.anchors.get(&id) {
                    Some((node, size)) => (node.clone(), *size),
                    None => (null(start(span)), Size::ONE),
                };
                builder.grow(size, true, span)?;
                builder.add(node, size, 0);
            }
            _ => {}
        }
    }
    Ok(builder.root.unwrap_or_else(|| null(Position::START)))
}

/// Where `text` ends: the line after its last line break (as YAML counts them: `\n`, `\r\n`
/// and `\r`), the column after its last character. The parser places an error found at the end
/// of the text (`key` with no `:` on the last line), and an empty scalar there, on a line after
/// that, which no editor can jump to; such a position is moved here.
pub fn end_of(text: &str) -> Position {
    let (mut line, mut column) = (1, 1);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                (line, column) = (line + 1, 1);
            }
            '\n' => (line, column) = (line + 1, 1),
            _ => column += 1,
        }
    }
    Position::new(line, column)
}

fn null(position: Position) -> Node {
    Node {
        value: Value::Null,
        position,
        content: position,
        style: Style::Inline,
        plain: true,
    }
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

/// How big a node is once its aliases are expanded: what an alias to it adds.
#[derive(Debug, Clone, Copy)]
struct Size {
    nodes: usize,
    /// Levels of nesting inside the node: 0 for a scalar, 1 for `[a]`.
    height: usize,
}

impl Size {
    const ONE: Size = Size {
        nodes: 1,
        height: 0,
    };
}

enum Frame {
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>, Option<Node>),
}

/// A list or mapping being read, with the size of what it holds so far.
struct Open {
    frame: Frame,
    anchor: usize,
    position: Position,
    size: Size,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: HashMap<usize, (Node, Size)>,
    root: Option<Node>,
    /// Nodes in the document so far, aliases expanded.
    nodes: usize,
    max_nodes: usize,
}

impl Builder {
    /// Accounts for a node of `size` about to be added at the current depth (an alias's, or
    /// one just read); refuses it when a limit would be crossed.
    fn grow(&mut self, size: Size, alias: bool, span: Span) -> Result<(), SyntaxError> {
        let Size { nodes, height } = size;
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > self.max_nodes {
            let max = self.max_nodes;
            let message = if alias {
                format!(
                    "YAML aliases expand to more than {max} nodes; this alias alone adds {nodes}: write the values out or use fewer aliases"
                )
            } else {
                format!("the YAML has more than {max} nodes; split it into several files")
            };
            return Err(SyntaxError::limit(start(span), message));
        }
        let depth = self.stack.len().saturating_add(height);
        if depth > MAX_DEPTH {
            let message = if alias {
                format!(
                    "this alias nests {height} levels deep here, more than the {MAX_DEPTH} levels belroute reads; flatten the anchored value"
                )
            } else {
                format!(
                    "YAML nested more than {MAX_DEPTH} levels deep; flatten the lists and mappings"
                )
            };
            return Err(SyntaxError::limit(start(span), message));
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame, anchor: usize, span: Span) -> Result<(), SyntaxError> {
        // The list or mapping is one node one level down.
        let size = Size {
            nodes: 1,
            height: 1,
        };
        self.grow(size, false, span)?;
        self.stack.push(Open {
            frame,
            anchor,
            position: start(span),
            size,
        });
        Ok(())
    }

    fn close(&mut self) {
        let Some(open) = self.stack.pop() else {
            return;
        };
        let value = match open.frame {
            Frame::Seq(items) => Value::Seq(items.into()),
            Frame::Map(entries, _) => Value::Map(entries.into()),
        };
        let node = Node {
            value,
            position: open.position,
            content: open.position,
            style: Style::Collection,
            plain: false,
        };
        self.add(node, open.size, open.anchor);
    }

    fn add(&mut self, node: Node, size: Size, anchor: usize) {
        if anchor != 0 {
            // Cheap: children are shared, not copied.
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(parent) => {
                parent.size.nodes = parent.size.nodes.saturating_add(size.nodes);
                parent.size.height = parent.size.height.max(size.height + 1);
                match &mut parent.frame {
                    Frame::Seq(items) => items.push(node),
                    Frame::Map(entries, pending) => match pending.take() {
                        None => *pending = Some(node),
                        Some(key) => entries.push((key, node)),
                    },
                }
            }
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

    /// Found by the `rule_file` fuzzer: a Rhai error at the end of a `|` block at the end of
    /// the file pointed at the line after the file's last.
    #[test]
    fn positions_past_a_blocks_end_are_its_last_line() {
        let doc = parse("script: |\n  a +\n  b %").unwrap();
        let node = &doc.as_map().unwrap()[0].1;
        assert_eq!(node.as_str(), Some("a +\nb %\n"));
        assert_eq!(node.text_position(3, 1), Position::new(3, 6));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.position.line >= 2, "{err:?}");
    }

    /// Found by the `rule_file` and `config_file` fuzzers: an error at the end of the text was
    /// placed on a line after the last one.
    #[test]
    fn syntax_error_at_the_end_points_into_the_file() {
        for (text, at) in [
            ("rules:\nk", Position::new(2, 2)),
            (
                "lookups: [tickets]\nrules:\n  - name: a\nrules:\nk",
                Position::new(5, 2),
            ),
            ("a: 1\r\nk", Position::new(2, 2)),
            ("a: 1\rk", Position::new(2, 2)),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.position, at, "{text:?}: {err}");
        }
        // An empty key or value on the last line, too (`plugins.x`: keys must be text).
        let doc = parse("a:\n  ?   ").unwrap();
        let key = &doc.as_map().unwrap()[0].1.as_map().unwrap()[0].0;
        assert!(key.is_null());
        assert_eq!(key.position, Position::new(2, 7));
        // Before the end, the parser's own position stands.
        assert_eq!(end_of("a\nbc\n"), Position::new(3, 1));
        assert_eq!(end_of(""), Position::START);
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

    /// The classic "billion laughs": nine levels of ten aliases each, 10⁹ nodes in ~350 bytes.
    fn billion_laughs() -> String {
        let names: Vec<char> = ('a'..='j').collect();
        let mut text = String::from("a: &a [lol]\n");
        for pair in names.windows(2) {
            let refs = vec![format!("*{}", pair[0]); 10].join(",");
            text.push_str(&format!("{0}: &{0} [{refs}]\n", pair[1]));
        }
        text
    }

    #[test]
    fn an_alias_bomb_is_refused_fast_at_the_alias() {
        let text = billion_laughs();
        assert!(text.len() < 400, "{} bytes", text.len());
        let started = std::time::Instant::now();
        let err = parse(&text).unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(err.limit, "a limit, not a syntax error: {err:?}");
        assert_eq!(err.to_string(), err.message);
        assert!(
            err.message.starts_with(&format!(
                "YAML aliases expand to more than {MAX_NODES} nodes"
            )),
            "{err:?}"
        );
        // `f` holds 211,111 nodes: the ninth `*f` on line 7 is the first to cross the cap.
        let line = text.lines().nth(err.position.line - 1).unwrap();
        assert!(line.starts_with("g:"), "{err:?} at {line}");
        assert_eq!(&line[err.position.column - 1..][..2], "*f");
    }

    #[test]
    fn a_depth_bomb_is_refused_fast_at_the_too_deep_node() {
        let deep_message = format!(
            "YAML nested more than {MAX_DEPTH} levels deep; flatten the lists and mappings"
        );
        // Block lists, two bytes a level: 200,000 levels in 400 kB.
        let text = format!("{}x\n", "- ".repeat(200_000));
        let started = std::time::Instant::now();
        let err = parse(&text).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(err.message, deep_message);
        assert_eq!(err.position, Position::new(1, 2 * MAX_DEPTH + 1));

        // Flow lists: the root mapping is level 1, so the 64th `[` is level 65.
        let text = format!("x: {}{}\n", "[".repeat(100), "]".repeat(100));
        let err = parse(&text).unwrap_err();
        assert_eq!(err.message, deep_message);
        assert_eq!(err.position, Position::new(1, 4 + MAX_DEPTH - 1));
        // Deeper flow nesting than the YAML reader's own limit (255) stops in the reader.
        let text = format!("x: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let started = std::time::Instant::now();
        let err = parse(&text).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(err.to_string(), "YAML syntax: recursion limit exceeded");
        assert!(!err.limit);
    }

    #[test]
    fn unquoted_expressions_get_the_fix() {
        let cases = [
            (
                "when: !open_hours(\"mon-fri 09:00-17:00\")\n",
                "a YAML tag: quote the expression",
            ),
            ("when: *x\n", "YAML alias or anchor: quote"),
            ("when: `x`\n", "must be quoted"),
            ("when: a == \"b: c\"\n", "starts a new key: quote the value"),
        ];
        for (text, hint) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.to_string().contains(hint), "{text:?}: {err}");
        }
    }

    #[test]
    fn aliases_cannot_nest_past_the_depth_limit() {
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        let text = format!(
            "a: &deep {deep}\nb: [[[[[[[[[[[[[[[[[[[[[[[[[*deep]]]]]]]]]]]]]]]]]]]]]]]]]\n"
        );
        let err = parse(&text).unwrap_err();
        assert!(
            err.message.contains("this alias nests 40 levels deep"),
            "{err:?}"
        );
        assert_eq!(err.position.line, 2);
        assert_eq!(
            &text.lines().nth(1).unwrap()[err.position.column - 1..][..5],
            "*deep"
        );
    }

    #[test]
    fn ordinary_aliases_still_read() {
        let doc =
            parse("base: &b {route: x, when: 'true'}\nrules: [*b, *b]\nn: &n 3\nm: *n\n").unwrap();
        let rules = doc.find("rules").unwrap().as_seq().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].find("route").and_then(Node::as_str), Some("x"));
        assert_eq!(doc.find("m").and_then(Node::as_str), Some("3"));
        // Nesting right up to the limit is fine.
        let max = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&max).is_ok());
    }

    #[test]
    fn too_many_plain_nodes_and_too_large_texts_are_refused() {
        // The list and 999 items are 1,000 nodes; the 1,000th item is one too many.
        let many = "- 1\n".repeat(1_000);
        assert!(parse_within(&many[..many.len() - 4], 1_000).is_ok());
        let err = parse_within(&many, 1_000).unwrap_err();
        assert_eq!(
            err.message,
            "the YAML has more than 1000 nodes; split it into several files"
        );
        assert_eq!(err.position, Position::new(1_000, 3));
        let big = " ".repeat(MAX_INPUT_BYTES + 1);
        let err = parse(&big).unwrap_err();
        assert_eq!(err.position, Position::START);
        assert!(err.message.contains("larger than 16 MiB"), "{err:?}");
    }
}
