//! Rewrites a document that only Python's `json` reads into one `serde_json` reads.
//!
//! What Python's `json` accepts and `serde_json` does not, or reads differently:
//! - repeated keys: Python keeps the last value (at the place of the first), so an earlier
//!   value that does not fit the model must not fail the read. The task, item and content
//!   objects are rebuilt with one entry per key;
//! - `NaN`, `Infinity` and `-Infinity` literals, and nesting deeper than `serde_json`'s
//!   limit of 128 levels (Python goes to about 1000);
//!
//! Opaque values (`chat_history`, each `pending_tool_calls` object, unknown fields) are set
//! aside whole: each is replaced by a small placeholder object and put back verbatim after
//! the typed read ([`Normalized::restore`]), so nothing inside them reaches `serde_json`.
//! A literal left in a typed place (`"created_at": NaN`) is replaced by an array holding a
//! marker string, which every typed field refuses, as pydantic refuses a float there.
//! Markers are built to occur nowhere in the input.
//!
//! Runs only on the slow path: when the document did not read as it is and has passed
//! [`check_json_syntax`](super::check_json_syntax). Iterative throughout.

use std::collections::HashMap;

use super::{AgentTask, OpaqueJson};

/// A rewritten document, and what to put back into it.
pub(crate) struct Normalized<'a> {
    /// The document `serde_json` can read.
    pub(crate) text: String,
    /// The input.
    src: &'a str,
    /// The start of each placeholder's string (`\u0000ta…-`), unique in the input.
    marker: String,
    /// The opaque values set aside, by placeholder number.
    set_aside: Vec<Span>,
    /// Whether keys were deduplicated or literals replaced: the rewrite changes what is
    /// read, not only how.
    pub(crate) changed: bool,
    /// Whether a literal was replaced in a typed place.
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

/// What a value is read as.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// One of the model's objects.
    Model(Level),
    /// The task's `items`: an array of items.
    Items,
    /// A typed field (a string, an enum, a datetime).
    Typed,
    /// An unknown field: any value, kept verbatim.
    Opaque,
    /// `chat_history`: an object kept verbatim (anything else is refused later).
    OpaqueObject,
    /// `pending_tool_calls`: an array of objects kept verbatim.
    OpaqueObjects,
}

impl Place {
    fn of(level: Level, key: &str) -> Place {
        match (level, key) {
            (Level::Task, "items") => Place::Items,
            (Level::Task, "task_id" | "session_id" | "user_id")
            | (Level::Task, "created_at" | "last_updated" | "status") => Place::Typed,
            (Level::Item, "item") => Place::Model(Level::Content),
            (Level::Item, "chat_history") => Place::OpaqueObject,
            (Level::Item, "pending_tool_calls") => Place::OpaqueObjects,
            (Level::Item, "task_id" | "request_id" | "role" | "updated") => Place::Typed,
            (Level::Content, "content_type" | "content") => Place::Typed,
            _ => Place::Opaque,
        }
    }
}

/// Rewrites `text`, which passed the syntax check.
pub(crate) fn normalize(text: &str) -> Normalized<'_> {
    let marker = unique_marker(text);
    let mut writer = Writer {
        src: text,
        out: String::with_capacity(text.len() / 2 + 64),
        marker: &marker,
        set_aside: Vec::new(),
        changed: false,
        replaced_literals: false,
    };
    let start = skip_ws(text.as_bytes(), 0);
    let end = value_end(text.as_bytes(), start);
    writer.value(start, end, Place::Model(Level::Task));
    let Writer {
        out,
        set_aside,
        changed,
        replaced_literals,
        ..
    } = writer;
    Normalized {
        text: out,
        src: text,
        marker,
        set_aside,
        changed,
        replaced_literals,
    }
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

impl Normalized<'_> {
    /// Puts every opaque value set aside back into `task`, verbatim.
    pub(crate) fn restore(&self, task: &mut AgentTask) {
        if self.set_aside.is_empty() {
            return;
        }
        let fix = |value: &mut OpaqueJson| {
            if let Some(original) = self.original(value.as_str()) {
                *value = OpaqueJson::from_python_text(original);
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

    /// The input text a set-aside placeholder stands for.
    fn original(&self, placeholder: &str) -> Option<&str> {
        let number = placeholder
            .strip_prefix("{\"")?
            .strip_prefix(self.marker.as_str())?
            .strip_prefix("\":")?
            .strip_suffix('}')?;
        let (start, end) = *self.set_aside.get(number.parse::<usize>().ok()?)?;
        self.src.get(start..end)
    }

    /// `message` with any literal placeholder (or its marker string) shown as its literal.
    pub(crate) fn describe(&self, message: &str) -> String {
        let mut out = message.to_owned();
        for (index, literal) in LITERALS.iter().enumerate() {
            out = out.replace(&literal_placeholder(&self.marker, index), literal);
            out = out.replace(&format!("\"{}{index}\"", self.marker), literal);
        }
        out
    }
}

fn literal_placeholder(marker: &str, index: usize) -> String {
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
    set_aside: Vec<Span>,
    changed: bool,
    replaced_literals: bool,
}

impl Writer<'_> {
    /// Writes the value `src[start..end]`, read as `place`.
    fn value(&mut self, start: usize, end: usize, place: Place) {
        let first = self.src.as_bytes().get(start).copied();
        match (place, first) {
            (Place::Model(level), Some(b'{')) => self.object(start, level),
            (Place::Items, Some(b'[')) => self.array(start, Place::Model(Level::Item)),
            (Place::OpaqueObjects, Some(b'[')) => self.array(start, Place::OpaqueObject),
            (Place::Opaque, _) | (Place::OpaqueObject, Some(b'{')) => self.put_aside(start, end),
            _ => self.verbatim(start, end),
        }
    }

    /// Writes a placeholder object for an opaque value, to be put back after the read.
    fn put_aside(&mut self, start: usize, end: usize) {
        let number = self.set_aside.len();
        self.set_aside.push((start, end));
        self.out.push_str("{\"");
        self.out.push_str(self.marker);
        self.out.push_str("\":");
        self.out.push_str(&number.to_string());
        self.out.push('}');
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
            let place = Place::of(level, &entry.key);
            self.value(entry.value.0, entry.value.1, place);
        }
        self.out.push('}');
    }

    /// Writes the array at `start`, each element read as `element`.
    fn array(&mut self, start: usize, element: Place) {
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
            self.value(pos, end, element);
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
                            self.out.push_str(&literal_placeholder(self.marker, index));
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
