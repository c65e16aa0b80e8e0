//! Rewrites a document that only Python's `json` reads into one `serde_json` reads.
//!
//! Two things Python's `json` accepts stop `serde_json` or change the meaning:
//! - repeated keys: Python keeps the last value (at the place of the first key), so an
//!   earlier value that does not fit the model must not fail the read. The task, item and
//!   content objects are rebuilt with one entry per key;
//! - `NaN`, `Infinity` and `-Infinity` literals: each is replaced by a placeholder, an
//!   array holding a marker string found nowhere in the input. Every typed field refuses an
//!   array whose element is a string (as pydantic refuses a float there), and opaque values
//!   get their literal back afterwards ([`Normalized::restore`]).
//!
//! Values below the model's objects (opaque JSON, unknown fields) are copied verbatim,
//! repeated keys included. Runs only on the slow path: when the document did not read as
//! it is and has passed [`check_json_syntax`](super::check_json_syntax).

use std::collections::HashMap;

use super::{AgentTask, OpaqueJson};

/// A rewritten document, and what to put back into opaque values.
pub(crate) struct Normalized {
    /// The document `serde_json` can read.
    pub(crate) text: String,
    /// The start of each placeholder's string (`"\u0000ta…-`), unique in the input.
    marker: String,
    /// Whether any literal was replaced.
    pub(crate) replaced_literals: bool,
}

/// The three literals, in the order their placeholders are numbered.
const LITERALS: [&str; 3] = ["NaN", "Infinity", "-Infinity"];

/// Which model object a JSON object is read as.
#[derive(Clone, Copy, PartialEq)]
enum Level {
    Task,
    Item,
    Content,
}

/// Rewrites `text` (which passed the syntax check) if it has repeated keys in the model's
/// objects or non-finite literals anywhere; `None` when there is nothing to rewrite.
pub(crate) fn normalize(text: &str) -> Option<Normalized> {
    let marker = unique_marker(text);
    let mut writer = Writer {
        src: text,
        out: String::with_capacity(text.len() + 64),
        marker: &marker,
        changed: false,
        replaced_literals: false,
    };
    let start = skip_ws(text.as_bytes(), 0);
    let end = value_end(text.as_bytes(), start);
    writer.value(start, end, Some(Level::Task));
    let (changed, replaced_literals, text) = (writer.changed, writer.replaced_literals, writer.out);
    changed.then_some(Normalized {
        replaced_literals,
        text,
        marker,
    })
}

/// A marker prefix that occurs nowhere in `text`, so every occurrence after the rewrite
/// is a placeholder.
fn unique_marker(text: &str) -> String {
    let mut n = 0u32;
    loop {
        let marker = format!("\\u0000ta{n}-");
        if !text.contains(&marker) {
            return marker;
        }
        n += 1;
    }
}

impl Normalized {
    /// Puts the literals back into every opaque value of `task` that holds a placeholder.
    pub(crate) fn restore(&self, task: &mut AgentTask) {
        if !self.replaced_literals {
            return;
        }
        let fix = |value: &mut OpaqueJson| {
            if value.as_str().contains(&self.marker) {
                *value = OpaqueJson::from_python_text(&self.unplace(value.as_str()));
            }
        };
        for (_, value) in task.extra.iter_mut() {
            fix(value);
        }
        for item in &mut task.items {
            for (_, value) in item.extra.iter_mut() {
                fix(value);
            }
            for (_, value) in item.item.extra.iter_mut() {
                fix(value);
            }
            for call in item.pending_tool_calls.iter_mut().flatten() {
                fix(call);
            }
            if let Some(history) = &mut item.chat_history {
                fix(history);
            }
        }
    }

    /// `message` with any placeholder (or its marker string) shown as its literal.
    pub(crate) fn describe(&self, message: &str) -> String {
        let mut out = self.unplace(message);
        for (index, literal) in LITERALS.iter().enumerate() {
            out = out.replace(&format!("\"{}{index}\"", self.marker), literal);
        }
        out
    }

    fn unplace(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (index, literal) in LITERALS.iter().enumerate() {
            out = out.replace(&placeholder(&self.marker, index), literal);
        }
        out
    }
}

fn placeholder(marker: &str, index: usize) -> String {
    format!("[\"{marker}{index}\"]")
}

/// Where a piece of the input is: start and end byte offsets.
type Span = (usize, usize);

/// One member of a model object: its key decoded and as written, and its value.
struct Entry {
    key: String,
    key_span: Span,
    value: Span,
}

struct Writer<'a> {
    src: &'a str,
    out: String,
    marker: &'a str,
    changed: bool,
    replaced_literals: bool,
}

impl Writer<'_> {
    /// Writes the value `src[start..end]`; an object at `level` is rebuilt with one entry
    /// per key.
    fn value(&mut self, start: usize, end: usize, level: Option<Level>) {
        let bytes = self.src.as_bytes();
        match (level, bytes.get(start)) {
            (Some(level), Some(b'{')) => self.object(start, level),
            // `items` of the task: each element is an item.
            (Some(Level::Item), Some(b'[')) => self.array_of_items(start),
            _ => self.verbatim(start, end),
        }
    }

    fn object(&mut self, start: usize, level: Level) {
        let bytes = self.src.as_bytes();
        // One entry per distinct key, at the place of the first (found through a map: an
        // object may have any number of keys).
        let mut entries: Vec<Entry> = Vec::new();
        let mut places: HashMap<String, usize> = HashMap::new();
        let mut pos = skip_ws(bytes, start + 1);
        while bytes.get(pos) == Some(&b'"') {
            let key_end = string_end(bytes, pos);
            let key_span = (pos, key_end);
            let raw_key = &self.src[pos..key_end];
            // Python compares keys after unescaping; a key serde_json cannot decode (a lone
            // surrogate) is compared as written.
            let key = serde_json::from_str::<String>(raw_key).unwrap_or_else(|_| raw_key.into());
            pos = skip_ws(bytes, key_end);
            pos = skip_ws(bytes, pos + 1); // the colon
            let value_start = pos;
            let value_end = value_end(bytes, value_start);
            match places.get(&key) {
                Some(&place) => {
                    entries[place].value = (value_start, value_end);
                    self.changed = true;
                }
                None => {
                    places.insert(key.clone(), entries.len());
                    entries.push(Entry {
                        key,
                        key_span,
                        value: (value_start, value_end),
                    });
                }
            }
            pos = skip_ws(bytes, value_end);
            if bytes.get(pos) == Some(&b',') {
                pos = skip_ws(bytes, pos + 1);
            }
        }
        self.out.push('{');
        for (index, entry) in entries.iter().enumerate() {
            if index > 0 {
                self.out.push(',');
            }
            self.out
                .push_str(&self.src[entry.key_span.0..entry.key_span.1]);
            self.out.push(':');
            let child = match (level, entry.key.as_str()) {
                (Level::Task, "items") => Some(Level::Item),
                (Level::Item, "item") => Some(Level::Content),
                _ => None,
            };
            self.value(entry.value.0, entry.value.1, child);
        }
        self.out.push('}');
    }

    fn array_of_items(&mut self, start: usize) {
        let bytes = self.src.as_bytes();
        let mut pos = skip_ws(bytes, start + 1);
        self.out.push('[');
        let mut first = true;
        while pos < bytes.len() && bytes[pos] != b']' {
            let end = value_end(bytes, pos);
            if !first {
                self.out.push(',');
            }
            first = false;
            self.value(pos, end, Some(Level::Item));
            pos = skip_ws(bytes, end);
            if bytes.get(pos) == Some(&b',') {
                pos = skip_ws(bytes, pos + 1);
            }
        }
        self.out.push(']');
    }

    /// Copies `src[start..end]`, replacing each non-finite literal by its placeholder.
    fn verbatim(&mut self, start: usize, end: usize) {
        let bytes = self.src.as_bytes();
        let mut copied = start;
        let mut pos = start;
        while pos < end {
            match bytes[pos] {
                b'"' => pos = string_end(bytes, pos),
                b'N' | b'I' | b'-' => {
                    let rest = &self.src[pos..end];
                    match LITERALS
                        .iter()
                        .position(|literal| rest.starts_with(literal))
                    {
                        Some(index) => {
                            self.out.push_str(&self.src[copied..pos]);
                            self.out.push_str(&placeholder(self.marker, index));
                            pos += LITERALS[index].len();
                            copied = pos;
                            self.changed = true;
                            self.replaced_literals = true;
                        }
                        None => pos += 1,
                    }
                }
                _ => pos += 1,
            }
        }
        self.out.push_str(&self.src[copied..end]);
    }
}

fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// The end of the string literal whose opening quote is at `start`.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut pos = start + 1;
    while pos < bytes.len() {
        match bytes[pos] {
            b'\\' => pos += 2,
            b'"' => return pos + 1,
            _ => pos += 1,
        }
    }
    bytes.len()
}

/// The end of the (syntactically valid) value starting at `start`. Iterative: containers
/// are skipped by counting brackets outside strings.
fn value_end(bytes: &[u8], start: usize) -> usize {
    match bytes.get(start) {
        Some(b'"') => string_end(bytes, start),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut pos = start;
            while pos < bytes.len() {
                match bytes[pos] {
                    b'"' => {
                        pos = string_end(bytes, pos);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return pos + 1;
                        }
                    }
                    _ => {}
                }
                pos += 1;
            }
            bytes.len()
        }
        _ => {
            let mut pos = start;
            while pos < bytes.len()
                && !matches!(
                    bytes[pos],
                    b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'
                )
            {
                pos += 1;
            }
            pos
        }
    }
}
