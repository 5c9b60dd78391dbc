//! A fast path for parsing KDL 2.0 fabric files.
//!
//! `kdl::KdlDocument::parse_v2` is a combinator parser that spends thousands of
//! instructions per byte; on a fabric with thousands of devices it is nearly all of the
//! time `ztpc check` takes. [`parse`] is a hand-written recursive-descent parser for the
//! common subset of KDL 2.0 that reads a text exactly the way `kdl` does, with every span
//! the `kdl` parser would give (node, node name, type annotation, entry, property name and
//! children block), so everything downstream (diagnostics included) is byte-identical.
//!
//! It does not build `kdl`'s types, which are large (a `KdlNode` is 448 bytes, a
//! `KdlEntry` 384, each with its own `Vec`s and format strings): the document of a
//! 10,000-device fabric took 49 MB and 180,000 allocations, and the page faults cost as
//! much as the parsing. It builds a compact [`Document`] instead: two arenas (every node,
//! and every entry, in one `Vec` each), with names and strings borrowed from the text
//! unless they hold escapes. The syntax walker reads either tree through [`NodeView`] and
//! [`EntryView`], which are implemented here for both.
//!
//! It is deliberately partial. It returns `None`, and the caller falls back to
//! `parse_v2`, which then does all the error reporting, on any syntax error and on every
//! construct it does not handle: raw strings, multi-line strings, whitespace escapes in
//! strings, `#inf`/`#-inf`/`#nan`, floats with exponents, hex/octal/binary numbers, line
//! continuations (`\`), a BOM, non-ASCII outside quoted strings and comments, newlines
//! other than LF/CRLF/CR (VT, FF, NEL, LS, PS), DEL and NUL, a slashdashed node right
//! after a value with no space (`a #true/-b`), nesting deeper than [`MAX_DEPTH`], and
//! texts of 4 GiB or more.
//!
//! The parser mirrors `kdl`'s `v2_parser.rs` function by function where the grammar
//! backtracks (slashdash on nodes, entries and children blocks), so that whenever it
//! accepts a text, it reads it the way `kdl` does. The differential tests at the end of
//! this file hold it to that: they compare, through the views, the compact tree with the
//! one `parse_v2` builds.

use std::borrow::Cow;

use kdl::{KdlEntry, KdlIdentifier, KdlNode, KdlValue};
use miette::SourceSpan;

/// Deepest nesting of children blocks and slashdash chains handled by the fast path.
pub const MAX_DEPTH: u32 = 128;

/// A value as the syntax walker sees it, borrowed from either tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'t> {
    String(&'t str),
    Integer(i128),
    Float(f64),
    Bool(bool),
    Null,
}

/// What the syntax walker reads from a node, implemented for `&KdlNode` (the fallback)
/// and for [`FastNode`].
pub trait NodeView<'t>: Copy {
    type Entry: EntryView<'t>;
    fn name(self) -> &'t str;
    fn name_span(self) -> SourceSpan;
    /// The type annotation and its span (that of the name inside the parentheses).
    fn ty(self) -> Option<(&'t str, SourceSpan)>;
    fn span(self) -> SourceSpan;
    fn entries(self) -> impl Iterator<Item = Self::Entry>;
    /// The children, and the span of the block's nodes (not of its braces).
    fn children(self) -> Option<(impl Iterator<Item = Self>, SourceSpan)>;
}

/// What the syntax walker reads from an argument or property.
pub trait EntryView<'t>: Copy {
    /// A property's key and its span; `None` for an argument.
    fn name(self) -> Option<(&'t str, SourceSpan)>;
    fn ty(self) -> Option<(&'t str, SourceSpan)>;
    fn value(self) -> ValueRef<'t>;
    /// From the key (if any) through the value.
    fn span(self) -> SourceSpan;
}

fn ident_view(id: &KdlIdentifier) -> (&str, SourceSpan) {
    (id.value(), id.span())
}

impl<'t> NodeView<'t> for &'t KdlNode {
    type Entry = &'t KdlEntry;

    fn name(self) -> &'t str {
        KdlNode::name(self).value()
    }

    fn name_span(self) -> SourceSpan {
        KdlNode::name(self).span()
    }

    fn ty(self) -> Option<(&'t str, SourceSpan)> {
        KdlNode::ty(self).map(ident_view)
    }

    fn span(self) -> SourceSpan {
        KdlNode::span(self)
    }

    fn entries(self) -> impl Iterator<Item = &'t KdlEntry> {
        KdlNode::entries(self).iter()
    }

    fn children(self) -> Option<(impl Iterator<Item = Self>, SourceSpan)> {
        KdlNode::children(self).map(|d| (d.nodes().iter(), d.span()))
    }
}

impl<'t> EntryView<'t> for &'t KdlEntry {
    fn name(self) -> Option<(&'t str, SourceSpan)> {
        KdlEntry::name(self).map(ident_view)
    }

    fn ty(self) -> Option<(&'t str, SourceSpan)> {
        KdlEntry::ty(self).map(ident_view)
    }

    fn value(self) -> ValueRef<'t> {
        match KdlEntry::value(self) {
            KdlValue::String(s) => ValueRef::String(s),
            KdlValue::Integer(i) => ValueRef::Integer(*i),
            KdlValue::Float(f) => ValueRef::Float(*f),
            KdlValue::Bool(b) => ValueRef::Bool(*b),
            KdlValue::Null => ValueRef::Null,
        }
    }

    fn span(self) -> SourceSpan {
        KdlEntry::span(self)
    }
}

/// A byte range of the text (the fast path only takes texts shorter than 4 GiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        Span { start: start as u32, end: end as u32 }
    }
}

impl From<Span> for SourceSpan {
    fn from(s: Span) -> SourceSpan {
        (s.start as usize..s.end as usize).into()
    }
}

/// A name (node name, property key or type annotation) with its span.
#[derive(Debug)]
struct Ident<'a> {
    value: Cow<'a, str>,
    span: Span,
}

impl Ident<'_> {
    fn view(&self) -> (&str, SourceSpan) {
        (&self.value, self.span.into())
    }
}

#[derive(Debug)]
enum Value<'a> {
    String(Cow<'a, str>),
    Integer(i128),
    Float(f64),
    Bool(bool),
    Null,
}

/// A run of nodes in [`Document::nodes`], and the span kdl gives their document.
#[derive(Debug, Clone, Copy)]
struct List {
    start: u32,
    end: u32,
    span: Span,
}

#[derive(Debug)]
struct Node<'a> {
    name: Ident<'a>,
    /// Boxed: annotations are rare, and this keeps the node small.
    ty: Option<Box<Ident<'a>>>,
    /// A run of [`Document::entries`].
    entries: (u32, u32),
    children: Option<List>,
    span: Span,
}

#[derive(Debug)]
struct Entry<'a> {
    name: Option<Ident<'a>>,
    ty: Option<Box<Ident<'a>>>,
    value: Value<'a>,
    span: Span,
}

/// The compact tree [`parse`] builds. Children lists are stored after their own
/// children, so the top-level list comes last.
#[derive(Debug)]
pub struct Document<'a> {
    nodes: Vec<Node<'a>>,
    entries: Vec<Entry<'a>>,
    top: List,
}

impl<'a> Document<'a> {
    /// The top-level nodes.
    pub fn nodes(&self) -> FastNodes<'_, 'a> {
        self.list(self.top)
    }

    /// The span kdl gives the document: from the first node to the end of the last one.
    pub fn span(&self) -> SourceSpan {
        self.top.span.into()
    }

    fn list(&self, l: List) -> FastNodes<'_, 'a> {
        let nodes = self.nodes.get(l.start as usize..l.end as usize).unwrap_or_default();
        FastNodes { doc: self, iter: nodes.iter() }
    }
}

/// A node of a [`Document`].
#[derive(Debug, Clone, Copy)]
pub struct FastNode<'t, 'a> {
    doc: &'t Document<'a>,
    node: &'t Node<'a>,
}

/// An argument or property of a [`Document`].
#[derive(Debug, Clone, Copy)]
pub struct FastEntry<'t, 'a>(&'t Entry<'a>);

/// A list of nodes of a [`Document`].
#[derive(Debug, Clone)]
pub struct FastNodes<'t, 'a> {
    doc: &'t Document<'a>,
    iter: std::slice::Iter<'t, Node<'a>>,
}

impl<'t, 'a> Iterator for FastNodes<'t, 'a> {
    type Item = FastNode<'t, 'a>;

    fn next(&mut self) -> Option<FastNode<'t, 'a>> {
        self.iter.next().map(|node| FastNode { doc: self.doc, node })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

impl ExactSizeIterator for FastNodes<'_, '_> {}

impl<'t, 'a> NodeView<'t> for FastNode<'t, 'a> {
    type Entry = FastEntry<'t, 'a>;

    fn name(self) -> &'t str {
        &self.node.name.value
    }

    fn name_span(self) -> SourceSpan {
        self.node.name.span.into()
    }

    fn ty(self) -> Option<(&'t str, SourceSpan)> {
        self.node.ty.as_deref().map(Ident::view)
    }

    fn span(self) -> SourceSpan {
        self.node.span.into()
    }

    fn entries(self) -> impl Iterator<Item = FastEntry<'t, 'a>> {
        let (start, end) = self.node.entries;
        self.doc.entries.get(start as usize..end as usize).unwrap_or_default().iter().map(FastEntry)
    }

    fn children(self) -> Option<(impl Iterator<Item = Self>, SourceSpan)> {
        self.node.children.map(|l| (self.doc.list(l), l.span.into()))
    }
}

impl<'t> EntryView<'t> for FastEntry<'t, '_> {
    fn name(self) -> Option<(&'t str, SourceSpan)> {
        self.0.name.as_ref().map(Ident::view)
    }

    fn ty(self) -> Option<(&'t str, SourceSpan)> {
        self.0.ty.as_deref().map(Ident::view)
    }

    fn value(self) -> ValueRef<'t> {
        match &self.0.value {
            Value::String(s) => ValueRef::String(s),
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Null => ValueRef::Null,
        }
    }

    fn span(self) -> SourceSpan {
        self.0.span.into()
    }
}

/// Parse `text` as KDL 2.0, or `None` when the fast path is not sure (syntax error or an
/// unsupported construct): then use `KdlDocument::parse_v2`.
pub fn parse(text: &str) -> Option<Document<'_>> {
    if text.as_bytes().contains(&0) || u32::try_from(text.len()).is_err() {
        return None;
    }
    // A generated fabric has about one node per 30 bytes and one entry per 20: reserving
    // that up front saves growing the arenas (pages past what is used are never touched).
    let mut p = Parser {
        text,
        s: text.as_bytes(),
        pos: 0,
        depth: 0,
        scratch: Vec::new(),
        nodes: Vec::with_capacity(text.len() / 24),
        entries: Vec::with_capacity(text.len() / 16),
    };
    let top = p.nodes(false)?;
    (p.pos == p.s.len()).then_some(Document { nodes: p.nodes, entries: p.entries, top })
}

/// In every method, `None` means "give up" (a syntax error, or something the fast path
/// does not handle). Methods that can also fail the way a `kdl` parser backtracks return
/// `Some(false)` / `Some(None)` for that, and leave resetting the position to the caller.
struct Parser<'a> {
    text: &'a str,
    s: &'a [u8],
    pos: usize,
    depth: u32,
    /// The nodes of the lists being read, each list then moved to `nodes` in one run.
    scratch: Vec<Node<'a>>,
    /// The arenas of the [`Document`].
    nodes: Vec<Node<'a>>,
    entries: Vec<Entry<'a>>,
}

/// Bytes allowed in a bare identifier (ASCII only; kdl's `identifier-char`).
fn is_ident_byte(c: u8) -> bool {
    matches!(c, 0x21..=0x7e)
        && !matches!(c, b'\\' | b'/' | b'(' | b')' | b'{' | b'}' | b'[' | b']' | b';' | b'"' | b'#' | b'=')
}

/// Code points a quoted string may not hold literally (newlines, and kdl's
/// `disallowed-literal-code-points`); ASCII ones are checked separately.
fn is_bad_string_char(c: char) -> bool {
    matches!(c,
        '\u{0085}' | '\u{2028}' | '\u{2029}'
        | '\u{200E}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}'
    )
}

/// Parse the digits of `s` (which may hold `_`), as kdl's `udecimal::<i128>` does.
fn udecimal(s: &str) -> Option<i128> {
    if s.contains('_') { s.replace('_', "").parse().ok() } else { s.parse().ok() }
}

impl<'a> Parser<'a> {
    /// The byte `i` ahead, or 0 at the end (the text holds no NUL).
    fn b(&self, i: usize) -> u8 {
        self.s.get(self.pos + i).copied().unwrap_or(0)
    }

    fn eof(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn at_slashdash(&self) -> bool {
        self.b(0) == b'/' && self.b(1) == b'-'
    }

    /// Whether a bare identifier starts here: kdl's `unambiguous-ident`, `signed-ident`
    /// (`-`, `-x`, `+x`) or `dotted-ident` (`.x`, `-.x`), but not a number (`1`, `-1`), nor
    /// `.1` or `-.1` (which kdl rejects).
    fn at_ident(&self) -> bool {
        let mut i = usize::from(matches!(self.b(0), b'+' | b'-'));
        if self.b(i) == b'.' {
            i += 1;
        }
        is_ident_byte(self.b(0)) && !self.b(i).is_ascii_digit()
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// `node-space*`: spaces, tabs and `/* */` comments. `Some(true)` when it consumed
    /// anything. A line continuation gives up.
    fn ws(&mut self) -> Option<bool> {
        let start = self.pos;
        loop {
            match self.b(0) {
                b' ' | b'\t' => self.pos += 1,
                b'/' if self.b(1) == b'*' => self.block_comment()?,
                b'\\' => return None,
                _ => return Some(self.pos != start),
            }
        }
    }

    /// `/* ... */`, nesting.
    fn block_comment(&mut self) -> Option<()> {
        self.pos += 2;
        let mut depth = 1u32;
        while depth > 0 {
            match (*self.s.get(self.pos)?, self.b(1)) {
                (b'*', b'/') => {
                    depth -= 1;
                    self.pos += 2;
                }
                (b'/', b'*') => {
                    depth += 1;
                    self.pos += 2;
                }
                _ => self.pos += 1,
            }
        }
        Some(())
    }

    /// `// ...` up to and including the newline (or the end).
    fn line_comment(&mut self) -> Option<()> {
        self.pos += 2;
        loop {
            let Some(&c) = self.s.get(self.pos) else { return Some(()) };
            match c {
                b'\n' => {
                    self.pos += 1;
                    return Some(());
                }
                b'\r' => {
                    self.pos += if self.b(1) == b'\n' { 2 } else { 1 };
                    return Some(());
                }
                // Other newlines (VT, FF, NEL, LS, PS) also end a comment: leave them to kdl.
                0x0b | 0x0c => return None,
                0xc2 if self.b(1) == 0x85 => return None,
                0xe2 if self.b(1) == 0x80 && matches!(self.b(2), 0xa8 | 0xa9) => return None,
                _ => self.pos += 1,
            }
        }
    }

    /// `line-space*`, and with `nodes` also slashdashed nodes: what may come before a
    /// node, and after `/-`.
    fn line_space(&mut self, nodes: bool) -> Option<()> {
        loop {
            match self.b(0) {
                b' ' | b'\t' | b'\n' => self.pos += 1,
                b'\r' => self.pos += if self.b(1) == b'\n' { 2 } else { 1 },
                b'/' => match self.b(1) {
                    b'*' => self.block_comment()?,
                    b'/' => self.line_comment()?,
                    b'-' if nodes => {
                        self.slashdash()?;
                        self.discard(Self::base_node)?;
                    }
                    _ => return Some(()),
                },
                b'\\' => return None,
                _ => return Some(()),
            }
        }
    }

    /// `'/-' line-space*` (the caller has seen the `/-`).
    fn slashdash(&mut self) -> Option<()> {
        self.pos += 2;
        self.line_space(false)
    }

    /// Run `f` for text that is read but dropped (slashdashed), then drop whatever it
    /// left in the arenas.
    fn discard<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<()> {
        let (nodes, entries) = (self.nodes.len(), self.entries.len());
        f(self)?;
        self.nodes.truncate(nodes);
        self.entries.truncate(entries);
        Some(())
    }

    /// kdl's `nodes`: the nodes of the document or of a children block. The span runs from
    /// the first node to the end of the last one (empty, after any leading space and
    /// comments, when there is none).
    fn nodes(&mut self, in_children: bool) -> Option<List> {
        self.line_space(true)?;
        let start = self.pos;
        let mut end = start;
        let mark = self.scratch.len();
        loop {
            if self.eof() {
                if in_children {
                    return None;
                }
                break;
            }
            if self.b(0) == b'}' {
                if !in_children {
                    return None;
                }
                break;
            }
            let node = self.base_node()?;
            end = self.pos;
            self.scratch.push(node);
            match self.b(0) {
                b';' | b'\n' => self.pos += 1,
                b'\r' => self.pos += if self.b(1) == b'\n' { 2 } else { 1 },
                b'/' if self.b(1) == b'/' => self.line_comment()?,
                b'/' if self.b(1) == b'-' => {
                    // No terminator: kdl ends the nodes here, and then takes slashdashed
                    // nodes as trailing space, which must run to the `}` or the end.
                    self.line_space(true)?;
                    if (in_children && self.b(0) == b'}') || (!in_children && self.eof()) {
                        break;
                    }
                    return None;
                }
                b'}' if in_children => break,
                _ if self.eof() => break,
                _ => return None,
            }
            self.line_space(true)?;
        }
        let first = self.nodes.len();
        self.nodes.extend(self.scratch.drain(mark..));
        Some(List { start: first as u32, end: self.nodes.len() as u32, span: Span::new(start, end) })
    }

    /// kdl's `base_node`: `(type)? name entries children? node-space*`, not the terminator.
    fn base_node(&mut self) -> Option<Node<'a>> {
        let start = self.pos;
        let ty = if self.b(0) == b'(' {
            let ty = self.ty()?;
            self.ws()?;
            Some(Box::new(ty))
        } else {
            None
        };
        let name = self.identifier()?;
        // The node's entries go straight to the arena: nothing else is pushed there until
        // they are all read (slashdashed entries are dropped, not pushed).
        let first = self.entries.len();
        loop {
            let save = self.pos;
            let at_space = matches!(self.b(0), b' ' | b'\t') || (self.b(0) == b'/' && self.b(1) == b'*');
            if !at_space {
                break;
            }
            match self.node_entry()? {
                Some(e) => self.entries.push(e),
                None => {
                    self.pos = save;
                    break;
                }
            }
        }
        let entries = (first as u32, self.entries.len() as u32);
        self.before_node_children()?;
        let mut children = None;
        if self.b(0) == b'{' {
            children = Some(self.node_children()?);
            let save = self.pos;
            if !self.slashdashed_children()? {
                self.pos = save;
            }
        }
        self.ws()?;
        Some(Node { name, ty, entries, children, span: Span::new(start, self.pos) })
    }

    /// kdl's `node_entry`: space, slashdashed entries, then one argument or property.
    /// `Some(None)` when there is no entry here (kdl backtracks).
    fn node_entry(&mut self) -> Option<Option<Entry<'a>>> {
        self.enter()?;
        self.ws()?;
        if self.at_slashdash() {
            let save = self.pos;
            if !(self.slashdashed_entries()? && self.ws()?) {
                self.pos = save;
            }
        }
        let entry = self.entry()?;
        self.leave();
        Some(entry)
    }

    /// `(/- entry) (node-space+ /- entry)*`; `Some(false)` when kdl backtracks.
    fn slashdashed_entries(&mut self) -> Option<bool> {
        self.slashdash()?;
        if self.node_entry()?.is_none() {
            return Some(false);
        }
        loop {
            let save = self.pos;
            if !(self.ws()? && self.at_slashdash()) {
                self.pos = save;
                return Some(true);
            }
            self.slashdash()?;
            if self.node_entry()?.is_none() {
                self.pos = save;
                return Some(true);
            }
        }
    }

    /// `node-space* (/- children) (node-space+ /- children)*`; `Some(false)` when kdl
    /// backtracks.
    fn slashdashed_children(&mut self) -> Option<bool> {
        self.ws()?;
        if !self.at_slashdash() {
            return Some(false);
        }
        self.slashdash()?;
        if self.b(0) != b'{' {
            return Some(false);
        }
        self.discard(Self::node_children)?;
        loop {
            let save = self.pos;
            if !(self.ws()? && self.at_slashdash()) {
                self.pos = save;
                return Some(true);
            }
            self.slashdash()?;
            if self.b(0) != b'{' {
                self.pos = save;
                return Some(true);
            }
            self.discard(Self::node_children)?;
        }
    }

    /// kdl's `before_node_children`: space and slashdashed entries or children blocks left
    /// after the entries.
    fn before_node_children(&mut self) -> Option<()> {
        if self.ws()? {
            let after_space = self.pos;
            if self.at_slashdash() && self.slashdashed_entries()? {
                let after_entries = self.pos;
                if !(self.ws()? && self.slashdashed_children()?) {
                    self.pos = after_entries;
                }
            } else {
                self.pos = after_space;
                if !self.slashdashed_children()? {
                    self.pos = after_space;
                }
            }
        }
        self.ws()?;
        Some(())
    }

    /// `'{' nodes '}'`; the document's span is that of its nodes, not of the braces.
    fn node_children(&mut self) -> Option<List> {
        self.enter()?;
        self.pos += 1;
        let doc = self.nodes(true)?;
        if self.b(0) != b'}' {
            return None;
        }
        self.pos += 1;
        self.leave();
        Some(doc)
    }

    /// One argument or property, without leading space; its span covers the key (if
    /// any) through the value. `Some(None)` when kdl backtracks (no entry starts here).
    fn entry(&mut self) -> Option<Option<Entry<'a>>> {
        let start = self.pos;
        let c = self.b(0);
        if self.eof() || matches!(c, b'{' | b'}' | b';' | b'\n' | b'\r' | b'/') {
            return Some(None);
        }
        let (name, ty, value) = if c == b'"' || self.at_ident() {
            let key = if c == b'"' { self.quoted()? } else { Cow::Borrowed(self.bare()?) };
            let key_end = self.pos;
            self.ws()?;
            if self.b(0) == b'=' {
                self.pos += 1;
                self.ws()?;
                let (ty, value) = self.value()?;
                (Some(Ident { value: key, span: Span::new(start, key_end) }), ty, value)
            } else {
                self.pos = key_end;
                (None, None, Value::String(key))
            }
        } else {
            let (ty, value) = self.value()?;
            (None, ty, value)
        };
        Some(Some(Entry { name, ty, value, span: Span::new(start, self.pos) }))
    }

    /// `(type)? value`.
    fn value(&mut self) -> Option<(Option<Box<Ident<'a>>>, Value<'a>)> {
        let ty = if self.b(0) == b'(' {
            let ty = self.ty()?;
            self.ws()?;
            Some(Box::new(ty))
        } else {
            None
        };
        let c = self.b(0);
        let value = match c {
            b'"' => Value::String(self.quoted()?),
            b'#' => self.keyword()?,
            b'0'..=b'9' => self.number()?,
            b'+' | b'-' if self.b(1).is_ascii_digit() => self.number()?,
            _ if self.at_ident() => Value::String(Cow::Borrowed(self.bare()?)),
            _ => return None,
        };
        Some((ty, value))
    }

    /// `'(' node-space* identifier node-space* ')'`.
    fn ty(&mut self) -> Option<Ident<'a>> {
        self.pos += 1;
        self.ws()?;
        let id = self.identifier()?;
        self.ws()?;
        if self.b(0) != b')' {
            return None;
        }
        self.pos += 1;
        Some(id)
    }

    /// A node name or type: a bare identifier or a quoted string, with its span.
    fn identifier(&mut self) -> Option<Ident<'a>> {
        let start = self.pos;
        let c = self.b(0);
        let value = if c == b'"' {
            self.quoted()?
        } else if self.at_ident() {
            Cow::Borrowed(self.bare()?)
        } else {
            return None;
        };
        Some(Ident { value, span: Span::new(start, self.pos) })
    }

    /// kdl's `value_terminator`, ASCII only: what may follow a value.
    fn at_value_end(&self) -> bool {
        match self.b(0) {
            0 => self.eof(),
            b'=' | b')' | b'{' | b'}' | b' ' | b'\t' | b';' | b'\n' | b'\r' => true,
            b'/' => matches!(self.b(1), b'*' | b'/'),
            _ => false,
        }
    }

    /// A bare identifier, ASCII only (the caller has checked [`Self::at_ident`]); not one of
    /// the words kdl keeps for keywords, and followed by what may end a value.
    fn bare(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while is_ident_byte(self.b(0)) {
            self.pos += 1;
        }
        let s = self.text.get(start..self.pos)?;
        if matches!(s, "true" | "false" | "null" | "inf" | "nan") || !self.at_value_end() {
            return None;
        }
        Some(s)
    }

    /// A single-line `"..."` string with the simple escapes and `\u{...}`.
    fn quoted(&mut self) -> Option<Cow<'a, str>> {
        if self.b(1) == b'"' && self.b(2) == b'"' {
            return None;
        }
        self.pos += 1;
        let mut out: Option<String> = None;
        let mut chunk = self.pos;
        loop {
            let c = *self.s.get(self.pos)?;
            match c {
                b'"' => break,
                b'\\' => {
                    let o = out.get_or_insert_with(String::new);
                    o.push_str(self.text.get(chunk..self.pos)?);
                    let esc = match self.b(1) {
                        b'\\' => '\\',
                        b'"' => '"',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b's' => ' ',
                        b'u' if self.b(2) == b'{' => {
                            let hex_start = self.pos + 3;
                            let mut end = hex_start;
                            while end - hex_start < 6 && self.s.get(end).is_some_and(u8::is_ascii_hexdigit) {
                                end += 1;
                            }
                            if end == hex_start || self.s.get(end) != Some(&b'}') {
                                return None;
                            }
                            let code = u32::from_str_radix(self.text.get(hex_start..end)?, 16).ok()?;
                            o.push(char::from_u32(code)?);
                            self.pos = end + 1;
                            chunk = self.pos;
                            continue;
                        }
                        _ => return None,
                    };
                    o.push(esc);
                    self.pos += 2;
                    chunk = self.pos;
                }
                0x7f => return None,
                c if c < 0x20 && c != b'\t' => return None,
                c if c < 0x80 => self.pos += 1,
                _ => {
                    let ch = self.text.get(self.pos..)?.chars().next()?;
                    if is_bad_string_char(ch) {
                        return None;
                    }
                    self.pos += ch.len_utf8();
                }
            }
        }
        let tail = self.text.get(chunk..self.pos)?;
        let value = match out {
            Some(mut o) => {
                o.push_str(tail);
                Cow::Owned(o)
            }
            None => Cow::Borrowed(tail),
        };
        self.pos += 1;
        self.at_value_end().then_some(value)
    }

    /// `#true`, `#false` or `#null`.
    fn keyword(&mut self) -> Option<Value<'a>> {
        let rest = self.s.get(self.pos + 1..)?;
        let (value, len) = if rest.starts_with(b"true") {
            (Value::Bool(true), 4)
        } else if rest.starts_with(b"false") {
            (Value::Bool(false), 5)
        } else if rest.starts_with(b"null") {
            (Value::Null, 4)
        } else {
            return None;
        };
        self.pos += 1 + len;
        self.at_value_end().then_some(value)
    }

    /// A decimal integer or a float without exponent: `[+-]?digit[digit_]*(.digit[digit_]*)?`.
    fn number(&mut self) -> Option<Value<'a>> {
        let start = self.pos;
        let negative = self.b(0) == b'-';
        if matches!(self.b(0), b'+' | b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        if !self.b(0).is_ascii_digit() || (self.b(0) == b'0' && self.b(1).is_ascii_alphabetic()) {
            return None;
        }
        while self.b(0).is_ascii_digit() || self.b(0) == b'_' {
            self.pos += 1;
        }
        let int_end = self.pos;
        let mut frac = None;
        if self.b(0) == b'.' {
            self.pos += 1;
            if !self.b(0).is_ascii_digit() {
                return None;
            }
            let frac_start = self.pos;
            while self.b(0).is_ascii_digit() || self.b(0) == b'_' {
                self.pos += 1;
            }
            frac = Some(frac_start..self.pos);
        }
        if !self.at_value_end() {
            return None;
        }
        let magnitude = udecimal(self.text.get(int_start..int_end)?)?;
        match frac {
            None => Some(Value::Integer(if negative { -magnitude } else { magnitude })),
            Some(frac) => {
                // kdl reads both parts as i128 first: a part that overflows is an error.
                udecimal(self.text.get(frac)?)?;
                let text = self.text.get(start..self.pos)?;
                let value = if text.contains('_') { text.replace('_', "").parse() } else { text.parse() };
                Some(Value::Float(value.ok()?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kdl::KdlDocument;
    use std::path::{Path, PathBuf};

    fn sp(s: SourceSpan) -> (usize, usize) {
        (s.offset(), s.len())
    }

    type IdentView<'t> = Option<(&'t str, SourceSpan)>;

    fn cmp_ident(what: &str, a: IdentView<'_>, b: IdentView<'_>) -> Result<(), String> {
        let a = a.map(|(v, s)| (v, sp(s)));
        let b = b.map(|(v, s)| (v, sp(s)));
        if a == b { Ok(()) } else { Err(format!("{what}: fast {a:?} vs kdl {b:?}")) }
    }

    fn same_value(a: ValueRef<'_>, b: ValueRef<'_>) -> bool {
        match (a, b) {
            (ValueRef::Float(x), ValueRef::Float(y)) => x.to_bits() == y.to_bits(),
            (ValueRef::String(x), ValueRef::String(y)) => x == y,
            (ValueRef::Integer(x), ValueRef::Integer(y)) => x == y,
            (ValueRef::Bool(x), ValueRef::Bool(y)) => x == y,
            (ValueRef::Null, ValueRef::Null) => true,
            _ => false,
        }
    }

    /// Compare two lists of nodes through the views, which is all the walker sees: every
    /// name, type, value and span, down the whole tree.
    fn cmp_nodes<'x, 'y, A: NodeView<'x>, B: NodeView<'y>>(
        path: &str,
        a: impl Iterator<Item = A>,
        b: impl Iterator<Item = B>,
    ) -> Result<(), String> {
        let a: Vec<A> = a.collect();
        let b: Vec<B> = b.collect();
        if a.len() != b.len() {
            return Err(format!("{path}: {} nodes vs {}", a.len(), b.len()));
        }
        for (i, (x, y)) in a.into_iter().zip(b).enumerate() {
            let p = format!("{path}/{i}:{}", y.name());
            cmp_ident(
                &format!("{p} name"),
                Some((x.name(), x.name_span())),
                Some((y.name(), y.name_span())),
            )?;
            cmp_ident(&format!("{p} type"), x.ty(), y.ty())?;
            if sp(x.span()) != sp(y.span()) {
                return Err(format!("{p}: node span fast {:?} vs kdl {:?}", sp(x.span()), sp(y.span())));
            }
            let xe: Vec<_> = x.entries().collect();
            let ye: Vec<_> = y.entries().collect();
            if xe.len() != ye.len() {
                return Err(format!("{p}: {} entries vs {}", xe.len(), ye.len()));
            }
            for (j, (e, f)) in xe.into_iter().zip(ye).enumerate() {
                let q = format!("{p} entry {j}");
                cmp_ident(&format!("{q} name"), e.name(), f.name())?;
                cmp_ident(&format!("{q} type"), e.ty(), f.ty())?;
                if !same_value(e.value(), f.value()) {
                    return Err(format!("{q}: value fast {:?} vs kdl {:?}", e.value(), f.value()));
                }
                if sp(e.span()) != sp(f.span()) {
                    return Err(format!("{q}: span fast {:?} vs kdl {:?}", sp(e.span()), sp(f.span())));
                }
            }
            match (x.children(), y.children()) {
                (None, None) => {}
                (Some((c, cs)), Some((d, ds))) => {
                    if sp(cs) != sp(ds) {
                        return Err(format!("{p}: children span fast {:?} vs kdl {:?}", sp(cs), sp(ds)));
                    }
                    cmp_nodes(&p, c, d)?;
                }
                (c, d) => {
                    return Err(format!("{p}: children fast {} vs kdl {}", c.is_some(), d.is_some()));
                }
            }
        }
        Ok(())
    }

    fn cmp_doc(a: &Document<'_>, b: &KdlDocument) -> Result<(), String> {
        if sp(a.span()) != sp(b.span()) {
            return Err(format!("document span fast {:?} vs kdl {:?}", sp(a.span()), sp(b.span())));
        }
        cmp_nodes("", a.nodes(), b.nodes().iter())
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Agree {
        /// Both parsed, to the same tree.
        Fast,
        /// kdl parsed it; the fast path stepped aside.
        Fallback,
        /// kdl rejected it, and so did the fast path.
        Rejected,
    }

    /// Run both parsers on `text`; they must agree.
    fn agree(text: &str) -> Result<Agree, String> {
        let slow = KdlDocument::parse_v2(text);
        let fast = parse(text);
        match (slow, fast) {
            (Err(_), None) => Ok(Agree::Rejected),
            (Err(_), Some(_)) => Err(format!("kdl rejects, fast path accepts: {text:?}")),
            (Ok(_), None) => Ok(Agree::Fallback),
            (Ok(slow), Some(fast)) => {
                cmp_doc(&fast, &slow).map(|()| Agree::Fast).map_err(|e| format!("{e}\nin {text:?}"))
            }
        }
    }

    fn examples() -> Vec<(PathBuf, String)> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "kdl") {
                    out.push(p);
                }
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut paths = Vec::new();
        walk(&root, &mut paths);
        paths.sort();
        assert!(paths.len() >= 30, "expected the examples, found {}", paths.len());
        paths.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap())).collect()
    }

    /// A port of `bench/gen-fabric` (same shapes; the bytes are not what the differential
    /// test cares about).
    fn gen_fabric(n: usize) -> String {
        use sha2::{Digest, Sha256};
        const PLATFORMS: [&str; 6] = ["junos", "junos-evo", "eos", "nxos", "sonic", "cumulus"];
        type Info = (&'static [&'static str], Option<&'static str>, &'static [&'static str]);
        fn info(p: &str) -> Info {
            match p {
                "junos" => (
                    &["22.4R3-S2.11", "23.2R1.14"],
                    Some(
                        "http://images.bench.example.net/junos/jinstall-host-qfx-5e-x86-64-23.2R1.14-secure-signed.tgz",
                    ),
                    &["QFX5120-48Y", "QFX5120-32C", "EX4400-48MP"],
                ),
                "junos-evo" => (
                    &["23.2R1.15-EVO", "23.4R2-S3.9-EVO"],
                    Some("http://images.bench.example.net/junos-evo/junos-evo-x86-64-23.4R2-S3.9-EVO.iso"),
                    &["QFX5220-32CD", "PTX10001-36MR"],
                ),
                "eos" => (
                    &["4.30.1F", "4.32.2F"],
                    Some("http://images.bench.example.net/eos/EOS-4.32.2F.swi"),
                    &["DCS-7050SX3-48YC8", "DCS-7280SR3-48YC8"],
                ),
                "nxos" => (&["10.3(3)", "10.4(3)"], None, &["N9K-C93180YC-FX3", "N9K-C9364C-GX"]),
                "sonic" => (
                    &[],
                    Some("http://images.bench.example.net/sonic/sonic-broadcom-202311.bin"),
                    &["AS7326-56X", "AS9716-32D"],
                ),
                _ => (&["5.9.1", "5.10.1"], None, &["SN2410", "SN3700"]),
            }
        }
        fn serial_prefix(p: &str) -> &'static str {
            match p {
                "junos" => "WS",
                "junos-evo" => "WE",
                "eos" => "JPE",
                "nxos" => "FDO",
                "sonic" => "AS",
                _ => "MT",
            }
        }
        let models: [(&str, &[&str]); 4] = [
            ("QFX5120-48Y", &["23.2R1.14"]),
            ("EX4400-48MP", &["23.4R2-S4.11"]),
            ("DCS-7280SR3-48YC8", &["4.33.1F"]),
            ("N9K-C9364C-GX", &["10.4(3)"]),
        ];
        let quoted = |vs: &[&str]| vs.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(" ");
        let nsub = 4.max(n.div_ceil(20000));
        let mut out: Vec<String> = Vec::new();
        let mut w = |s: String| out.push(s);
        w(format!("// Generated by bench/gen-fabric {n}: a synthetic fabric for benchmarks. Do not edit."));
        w(format!("fabric \"bench{n}\" {{"));
        w("    ztp-server \"10.100.0.10\" http-port=80".into());
        w(String::new());
        w("    controller \"https://10.100.0.2\" {".into());
        w("        user \"ztp\"".into());
        w("        password (file)\"secrets/controller-password\"".into());
        w("    }".into());
        w(String::new());
        w("    dhcp {".into());
        w("        domain-name \"bench.example.net\"".into());
        w("        domain-search \"bench.example.net\" \"example.net\"".into());
        w("        dns \"10.100.0.53\" \"10.100.0.54\"".into());
        w("        ntp \"10.100.0.123\"".into());
        w("        lease-time 7200 max=9200".into());
        for s in 0..nsub {
            let o = 100 + s;
            w(String::new());
            w(format!("        subnet \"10.{o}.0.0/16\" {{"));
            w(format!("            router \"10.{o}.0.1\""));
            w(format!("            pool \"10.{o}.240.0\" \"10.{o}.255.254\""));
            w("        }".into());
        }
        w("    }".into());
        w(String::new());
        w("    defaults {".into());
        w("        root-password (file)\"secrets/root-password\"".into());
        w("        device-user \"aosadmin\" password=(file)\"secrets/device-password\"".into());
        w("        agent \"onbox\" install-requirements=#true job-on-create=\"install\" operation-mode=\"full_control\""
            .into());
        w("    }".into());
        w(String::new());
        for p in PLATFORMS {
            let (versions, image, _) = info(p);
            w(format!("    platform \"{p}\" {{"));
            if !versions.is_empty() {
                w(format!("        versions {}", quoted(versions)));
            }
            if let Some(image) = image {
                let sha: String = Sha256::digest(image).iter().map(|b| format!("{b:02x}")).collect();
                w(format!("        image \"{image}\" sha256=\"{sha}\""));
            }
            if p == "junos" || p == "junos-evo" {
                w("        agent \"offbox\"".into());
            }
            w("    }".into());
        }
        w(String::new());
        for (name, versions) in models {
            w(format!("    model \"{name}\" {{ versions {} }}", quoted(versions)));
        }
        w(String::new());
        let mut per_subnet = vec![0usize; nsub];
        for i in 0..n {
            let p = PLATFORMS[i % 6];
            let j = i / 6;
            let s = j % nsub;
            let k = per_subnet[s];
            per_subnet[s] += 1;
            let o = 100 + s;
            let addr = format!("10.{o}.{}.{}", 1 + k / 254, 1 + k % 254);
            let ms = info(p).2;
            let model = ms[(i / (6 * nsub)) % ms.len()];
            let role = if i % 48 < 6 { "spine" } else { "leaf" };
            let kind = (j / nsub) % 10;
            w(format!("    device \"{role}{i:05}\" platform=\"{p}\" {{"));
            if kind == 3 {
                w(format!("        serial \"{}{i:09}\"", serial_prefix(p)));
                if p != "cumulus" {
                    w(format!("        address \"{addr}\""));
                }
            } else if kind == 7 {
                w(format!(
                    "        location remote-id=\"pod{s}-mgmt{:03}\" circuit-id=\"ge-0/0/{}\"",
                    k / 48,
                    k % 48
                ));
                w(format!("        address \"{addr}\""));
            } else {
                let m = 0x100000 + i;
                w(format!(
                    "        mac \"52:54:{:02x}:{:02x}:{:02x}:{:02x}\"",
                    (m >> 24) & 255,
                    (m >> 16) & 255,
                    (m >> 8) & 255,
                    m & 255
                ));
                if i % 4 == 0 {
                    w(format!("        serial \"{}{i:09}\"", serial_prefix(p)));
                }
                w(format!("        address \"{addr}\""));
            }
            w(format!("        model \"{model}\""));
            if i % 997 == 500 {
                w("        root-password (file)\"secrets/ops-root-password\"".into());
            }
            w("    }".into());
        }
        w("}".into());
        out.join("\n") + "\n"
    }

    /// Constructs the fast path must take (kdl accepts them), each checked against kdl.
    const SUPPORTED: &[&str] = &[
        "",
        "\n\n",
        "// only a comment",
        "/* only a comment */",
        "a",
        "a;",
        "a;b",
        "a; b;",
        "a\nb",
        "a\r\nb\r\n",
        "a\rb",
        "a // c\nb",
        "a//c",
        "a // c",
        "a /* c */ b",
        "a/*c*/b",
        "/* x */ a",
        "a /* nested /* c */ still */ b",
        "a /* multi\nline */ b\n",
        "  a  \n\n  b  \n",
        "a\tb\t",
        "a 1 2.5 -3 +4 1_000 0 -0 007 1_2.3_4 +1.5 -0.0",
        "a 170141183460469231731687303715884105727 -170141183460469231731687303715884105727",
        "a #true #false #null",
        "a x=1 y=\"z\" w=#null v=bare",
        "a b = 1",
        "a b= 1",
        "a b =1 c",
        "a b /* c */ = /* d */ 2",
        "a (t)\"x\" k=(env)\"v\"",
        "a (t)1 (t)#true (t)bare",
        "a ( t )\"x\" (t) \"y\" k=(t) 3",
        "a (\"quoted type\")\"x\"",
        "(t)a",
        "(t) a 1",
        "( t )a",
        "(\"q t\")a",
        "a \"esc \\\" \\\\ \\n \\t \\s \\b \\f \\r \\u{41} \\u{1F600} \\u{0}\"",
        "\"quoted name\" 1",
        "\"\" \"\"",
        "a \"\"",
        "a \"é ü ✓ \u{a0}\"",
        "a \"tab\there\"",
        "a { b; c }",
        "a{b}",
        "a b{c}",
        "a \"s\"{c}",
        "a #true{c}",
        "a {\n b 1\n c { d }\n}",
        "a { }",
        "a {}",
        "a {\n}\n",
        "a { b }; c",
        "a { b } // c\nd",
        "a {\n  // comment\n  b\n  /* block */\n}",
        "a { b { c { d { e } } } }",
        "a 1 { b }",
        "a 1 x=2 { b } ",
        "k,ey <weird>:chars! @x 'q' a.b c-d e+f g_h *",
        "/-a\nb",
        "/- a b\nc",
        "/-a { b }\nc",
        "/-\na\nb",
        "/- // c\n a\nb",
        "a /-b c",
        "a /-b",
        "a /- b",
        "a /-b=1 c",
        "a /-(t)1 c",
        "a /-{x} {y}",
        "a /-{x}",
        "a {x} /-{y}",
        "a {x} /-{y} /-{z}",
        "a /-b /-{c} {d}",
        "a /-b /-c {d} /-{e}",
        "/-a",
        "a\n/-b",
        "a\n/-b\n",
        "a /- b=1 c",
        "a /-\nb",
        "a /-/-b c d",
        "a /- /-b c d",
        "a { /-b }",
        "a { b; /-c }",
        "a /-b{c}",
        "a/*x*//-b c",
        "a {x} /-b",
        "a {x} /-b\n/-c {d}\n",
        "p { a {x} /-b }",
        "a - + -x +y -- -.x +. .x . .. .x.y - x=- -=1",
        "- 1",
        ".a",
        "-.a",
        "a ;b",
    ];

    /// Texts kdl rejects, or that the fast path leaves to kdl: they must never come out of
    /// the fast path different from kdl.
    const OTHERS: &[&str] = &[
        "a \"unterminated",
        "a \"unterminated\n",
        "a {",
        "a { b",
        "}",
        "a }",
        "a b{c}d",
        "a {b}c",
        "a #tru",
        "a #truex",
        "a #true=1",
        "a 1x",
        "a 1.",
        "a 1.x",
        "a 1..2",
        "a .5",
        "a -.5",
        "a x=",
        "a x= ",
        "a (t",
        "a (t)",
        "a ()x",
        "a (1)x",
        "a (a=b)x",
        "{a}",
        "a=1",
        "a =1",
        "\"a\"\"b\"",
        "\"a\"b",
        "a\"b\"",
        "a true",
        "a null",
        "a inf",
        "a nan",
        "true",
        "a 0x1F 0o17 0b101",
        "a 0x",
        "a 1e5 1.5E-3",
        "a #inf #-inf #nan",
        "a #\"raw\"#",
        "a ##\"raw\"##",
        "a \"\"\"\n  x\n  \"\"\"",
        "a \"\"\"x\"",
        "a \\\n b",
        "a b\\ // c\n c",
        "a \"ws \\  escape\"",
        "a \"\\q\"",
        "a \"\\u{}\"",
        "a \"\\u{D800}\"",
        "a \"\\u{1234567}\"",
        "a \"\\u{110000}\"",
        "a 170141183460469231731687303715884105728",
        "a -170141183460469231731687303715884105728",
        "a 1.1701411834604692317316873037158841057281",
        "café 1",
        "a\u{a0}b",
        "a \u{2028} b",
        "a // c\u{2028} b",
        "a \"\u{200e}\"",
        "\u{feff}a",
        "a \"\u{7}\"",
        "a\u{b}b",
        "a\u{c}b",
        "a\u{85}b",
        "a\0b",
        "a /* unterminated",
        "a /* /* */",
        "a {x} /-b\nc",
        "a -inf +inf -nan",
        "a -.5 +.5",
        "a /-",
        "a /-\n",
        "/-",
        "/-}",
        "a;/-",
        "/-a;b",
        "a /-{x",
        "a [b]",
        "a b]",
        "a (t)=1",
        "(t)a=1",
        "a b;;c",
        ";",
        "a\n;",
        "a /b",
        "a b/c",
        "a b/-c",
        "a \"b\"/-c",
        "a #true/-c",
        "(t)(u)a",
        "(t)",
        "a (t)(u)1",
        "a \"x\"=1",
        "/-/-a b\nc",
        "a { /-b; c }",
        "p { a {x} /-b; }",
        "\"a\"=1",
    ];

    #[test]
    fn supported_snippets_take_the_fast_path() {
        let bad: Vec<String> = SUPPORTED
            .iter()
            .filter_map(|t| match agree(t) {
                Ok(Agree::Fast) => None,
                other => Some(format!("{t:?}: {other:?}")),
            })
            .collect();
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn other_snippets_agree() {
        let bad: Vec<String> = OTHERS.iter().filter_map(|t| agree(t).err()).collect();
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn examples_take_the_fast_path() {
        let mut fast = 0;
        for (path, text) in examples() {
            match agree(&text) {
                Ok(Agree::Fast) => fast += 1,
                Ok(Agree::Rejected) => {} // examples/invalid/kdl-syntax.kdl
                other => panic!("{}: {other:?}", path.display()),
            }
        }
        assert!(fast >= 30, "only {fast} examples took the fast path");
    }

    #[test]
    fn generated_fabrics_take_the_fast_path() {
        for n in [1, 7, 60, 300] {
            let text = gen_fabric(n);
            assert_eq!(agree(&text), Ok(Agree::Fast), "gen_fabric({n})");
        }
    }

    /// Every insertion the snippet mutations try.
    const INSERTS: &[&str] =
        &["\"", "{", "}", ";", "\n", " ", "=", "#", "/-", "/*", "//", "(", ")", "\\", "-", "1"];
    /// The (fewer) insertions tried on whole example files, whose kdl parses are slow in a
    /// debug build.
    const FILE_INSERTS: &[&str] = &["\"", "{", "}", ";", "\n", "/-"];

    /// Each position is mutated by deleting its char, duplicating it, and inserting each
    /// of `inserts` before it. Positions: `samples` char boundaries evenly spread, shifted
    /// by `phase` so that similar files get probed at different places.
    fn mutations(text: &str, samples: usize, phase: usize, inserts: &[&str]) -> Vec<String> {
        let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
        let step = bounds.len().div_ceil(samples.max(1)).max(1);
        let mut out = Vec::new();
        for (k, &i) in bounds.iter().enumerate().skip(phase % step).step_by(step) {
            if let Some(&next) = bounds.get(k + 1) {
                out.push(format!("{}{}", &text[..i], &text[next..]));
                out.push(format!("{}{}", &text[..next], &text[i..]));
            }
            for ins in inserts {
                out.push(format!("{}{ins}{}", &text[..i], &text[i..]));
            }
        }
        out
    }

    fn check_all(texts: impl IntoIterator<Item = String>) -> [usize; 3] {
        let mut counts = [0usize; 3];
        let mut failures = Vec::new();
        for t in texts {
            match agree(&t) {
                Ok(a) => counts[a as usize] += 1,
                Err(e) => failures.push(e),
            }
        }
        assert!(failures.is_empty(), "{} disagreements:\n{}", failures.len(), failures.join("\n\n"));
        eprintln!("fast path {}, fallback {}, both rejected {}", counts[0], counts[1], counts[2]);
        counts
    }

    #[test]
    fn mutated_snippets_agree() {
        let texts = SUPPORTED.iter().chain(OTHERS).flat_map(|t| mutations(t, usize::MAX, 0, INSERTS));
        let [fast, _, rejected] = check_all(texts);
        assert!(fast > 1000 && rejected > 1000, "fast {fast}, rejected {rejected}");
    }

    #[test]
    fn mutated_examples_agree() {
        let mut texts: Vec<String> = Vec::new();
        for (k, (_, text)) in examples().iter().enumerate() {
            let samples = if text.len() > 2000 { 16 } else { 8 };
            texts.extend(mutations(text, samples, 7 * k, FILE_INSERTS));
        }
        texts.extend(mutations(&gen_fabric(2), 24, 0, FILE_INSERTS));
        let [fast, _, rejected] = check_all(texts);
        assert!(fast > 1000 && rejected > 1000, "fast {fast}, rejected {rejected}");
    }

    /// A fixed-seed pseudo-random generator (no dependency, same sequence every run).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, m: usize) -> usize {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % m
        }

        fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
            from[self.below(from.len())]
        }
    }

    /// Random small documents glued from KDL-ish pieces: mostly rejected, they probe the
    /// error paths.
    #[test]
    fn random_soups_agree() {
        const PIECES: &[&str] = &[
            "a", "b", "\"s\"", "\"\"", " ", " ", "  ", "\t", "\n", "\n", "\r\n", ";", "{", "}", "{", "}",
            "=", "/-", "/-", "/- ", "//c\n", "/*c*/", "/*", "*/", "(t)", "(", ")", "1", "-2", "1.5", "#true",
            "#null", "#", "x=1", "k=\"v\"", "\\", "-", ".", "0x1", "1e3", "true", "\"\\n\"", "\"é\"",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let texts: Vec<String> = (0..10_000)
            .map(|_| {
                let len = 1 + rng.below(14);
                (0..len).map(|_| rng.pick(PIECES)).collect()
            })
            .collect();
        let [fast, fallback, rejected] = check_all(texts);
        assert!(fast > 300 && rejected > 5000, "fast {fast}, fallback {fallback}, rejected {rejected}");
    }

    /// Random well-formed-looking documents (nodes, entries, types, children, comments
    /// and slashdashes everywhere they may go), a third of them then damaged by one
    /// random insertion or deletion.
    #[test]
    fn random_documents_agree() {
        fn space(r: &mut Rng, out: &mut String) {
            out.push_str(r.pick(&[" ", " ", " ", "  ", "\t", "/*c*/", " /* c */ ", " /*/*n*/*/ "]));
        }
        fn line_space(r: &mut Rng, out: &mut String, depth: usize) {
            for _ in 0..r.below(3) {
                match r.below(6) {
                    0 => out.push_str("// comment\n"),
                    1 if depth < 3 => {
                        out.push_str(r.pick(&["/-", "/- ", "/-\n"]));
                        node(r, out, depth + 1);
                        out.push('\n');
                    }
                    _ => out.push_str(r.pick(&["\n", " ", "\r\n", "\t", "/*x*/"])),
                }
            }
        }
        fn value(r: &mut Rng, out: &mut String) {
            if r.below(6) == 0 {
                out.push_str(r.pick(&["(t)", "(env)", "( t )", "(\"q t\")"]));
            }
            out.push_str(r.pick(&[
                "1",
                "-2",
                "+3",
                "1_000",
                "1.5",
                "-0.25",
                "#true",
                "#false",
                "#null",
                "\"s\"",
                "\"\"",
                "bare",
                "\"a b\"",
                "\"e\\n\\\"\\u{e9}\"",
                "\"é\"",
                "0",
                "x.y",
            ]));
        }
        fn entry(r: &mut Rng, out: &mut String) {
            if r.below(3) == 0 {
                out.push_str(r.pick(&["k", "key", "\"q k\"", "http-port"]));
                out.push_str(r.pick(&["=", "=", " = ", "= ", " ="]));
            }
            value(r, out);
        }
        fn children(r: &mut Rng, out: &mut String, depth: usize) {
            out.push('{');
            nodes(r, out, depth + 1);
            out.push('}');
        }
        fn node(r: &mut Rng, out: &mut String, depth: usize) {
            if r.below(8) == 0 {
                out.push_str(r.pick(&["(t)", "(t) ", "(\"ty\")"]));
            }
            out.push_str(r.pick(&["a", "node", "\"q n\"", "dev-1", "x.y"]));
            for _ in 0..r.below(4) {
                space(r, out);
                if r.below(5) == 0 {
                    out.push_str(r.pick(&["/-", "/- ", "/-\n"]));
                    if r.below(4) == 0 && depth < 3 {
                        children(r, out, depth);
                        continue;
                    }
                }
                entry(r, out);
            }
            if depth < 3 && r.below(3) == 0 {
                if r.below(2) == 0 {
                    space(r, out);
                }
                children(r, out, depth);
                if r.below(5) == 0 {
                    space(r, out);
                    out.push_str("/-");
                    children(r, out, depth);
                }
            }
            if r.below(4) == 0 {
                space(r, out);
            }
        }
        fn nodes(r: &mut Rng, out: &mut String, depth: usize) {
            line_space(r, out, depth);
            let n = r.below(4);
            for i in 0..n {
                node(r, out, depth);
                if i + 1 < n || r.below(2) == 0 {
                    out.push_str(r.pick(&["\n", ";", "; ", "\r\n", " // c\n", "\n\n"]));
                }
                line_space(r, out, depth);
            }
        }
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        let mut texts = Vec::new();
        for _ in 0..4_000 {
            let mut t = String::new();
            nodes(&mut r, &mut t, 0);
            if r.below(3) == 0 && !t.is_empty() {
                let bounds: Vec<usize> = t.char_indices().map(|(i, _)| i).collect();
                let i = bounds[r.below(bounds.len())];
                if r.below(3) == 0 {
                    t.remove(i);
                } else {
                    t.insert_str(i, r.pick(INSERTS));
                }
            }
            texts.push(t);
        }
        let [fast, fallback, rejected] = check_all(texts);
        assert!(fast > 2000 && rejected > 500, "fast {fast}, fallback {fallback}, rejected {rejected}");
    }
}
