//! JSON the store keeps without looking inside: `OpaqueJson` values and `ExtraFields`.

use std::collections::hash_map::{Entry, HashMap};
use std::fmt;

use serde::de::{self, Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeStruct, Serializer};
use std::sync::Arc;

use serde_json::value::RawValue;

/// One JSON value kept verbatim: its token text and key order are exactly those it was
/// read with, so writing it back gives the bytes the Python side wrote.
///
/// The only change ever made is dropping whitespace between tokens (what pretty-printed
/// input has), so that documents are always written compact, as pydantic writes them.
/// Whitespace inside string literals is part of the token and is kept.
///
/// The text is JSON as Python's `json` module reads it (see
/// [`check_json_syntax`](super::check_json_syntax)): besides standard JSON it may hold
/// `NaN`, `Infinity` and `-Infinity` literals and repeated keys, which are kept as they are.
///
/// Equality and hashing compare the text: `{"a":1,"b":2}` and `{"b":2,"a":1}` differ.
///
/// Serialising writes the text as it is and deserialising takes the text as it is; both
/// work with `serde_json` only (written as a raw value, the way
/// [`serde_json::value::RawValue`] is).
#[derive(Clone)]
pub struct OpaqueJson(Arc<str>);

impl OpaqueJson {
    /// Reads one JSON value from `json` (surrounding whitespace allowed), as Python's `json`
    /// reads it. Insignificant whitespace is dropped; everything else is kept verbatim.
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        match serde_json::from_str::<Box<RawValue>>(json) {
            Ok(raw) => compact(raw).map(|raw| Self::from_raw(&raw)),
            // `NaN` and `Infinity` are not JSON to serde_json, but are to Python.
            Err(error) => match super::check_json_syntax(json.as_bytes()) {
                Ok(()) => Ok(Self::from_python_text(
                    json.trim_matches(is_json_whitespace_char),
                )),
                Err(_) => Err(error),
            },
        }
    }

    /// The value as `serde_json` writes it (compact; object keys in the map's order).
    pub fn from_value(value: &serde_json::Value) -> Self {
        // Writing a `Value` into memory cannot fail: its keys are strings and its numbers
        // are finite. The fallback is there only to avoid a panic path.
        Self(Arc::from(
            serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()),
        ))
    }

    fn from_raw(raw: &RawValue) -> Self {
        Self(Arc::from(raw.get()))
    }

    /// A value from text that passed [`check_json_syntax`](super::check_json_syntax) and
    /// is one value with no surrounding whitespace (whitespace inside is dropped here).
    pub(crate) fn from_python_text(text: &str) -> Self {
        match first_insignificant_whitespace(text) {
            None => Self(Arc::from(text)),
            Some(start) => Self(Arc::from(strip_whitespace(text, start))),
        }
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as a `serde_json::Value` (parsed on each call).
    ///
    /// A number outside what `Value` can hold (such as `1e400`, `NaN` or `Infinity`)
    /// makes the result `Null`.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }

    /// Whether the value is a JSON object.
    pub fn is_object(&self) -> bool {
        self.0.starts_with('{')
    }

    /// The kind of value, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self.0.as_bytes().first() {
            Some(b'{') => "object",
            Some(b'[') => "array",
            Some(b'"') => "string",
            Some(b't' | b'f') => "boolean",
            Some(b'n') => "null",
            _ => "number",
        }
    }
}

fn is_json_whitespace_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Drops the whitespace between tokens of `raw`, keeping `raw` itself (no copy) when it
/// has none, which is the usual case.
fn compact(raw: Box<RawValue>) -> Result<Box<RawValue>, serde_json::Error> {
    match first_insignificant_whitespace(raw.get()) {
        None => Ok(raw),
        Some(start) => RawValue::from_string(strip_whitespace(raw.get(), start)),
    }
}

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Where the first whitespace outside string literals is, if anywhere.
///
/// Works on bytes: quote, backslash and whitespace are ASCII and never occur inside a
/// multi-byte UTF-8 sequence. A string literal is crossed in jumps from one quote or
/// backslash to the next (`memchr`), not byte by byte: in a tool call or a chat history
/// most bytes are inside strings.
fn first_insignificant_whitespace(json: &str) -> Option<usize> {
    let bytes = json.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'"' {
            i += 1;
            loop {
                let at = i + memchr::memchr2(b'"', b'\\', bytes.get(i..)?)?;
                if bytes[at] == b'"' {
                    i = at + 1;
                    break;
                }
                // An escape: the next byte is part of it, whatever it is.
                i = at + 2;
            }
        } else if is_json_whitespace(b) {
            return Some(i);
        } else {
            i += 1;
        }
    }
    None
}

/// `json` without whitespace outside string literals; `start` is where the first is.
fn strip_whitespace(json: &str, start: usize) -> String {
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len());
    out.push_str(&json[..start]);
    let mut in_string = false;
    let mut segment_start = start;
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if is_json_whitespace(b) {
            // Every cut is at an ASCII byte, hence at a char boundary.
            out.push_str(&json[segment_start..i]);
            segment_start = i + 1;
        }
        i += 1;
    }
    out.push_str(&json[segment_start..]);
    out
}

impl PartialEq for OpaqueJson {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for OpaqueJson {}

impl std::hash::Hash for OpaqueJson {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for OpaqueJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OpaqueJson")
            .field(&format_args!("{}", self.as_str()))
            .finish()
    }
}

impl fmt::Display for OpaqueJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// serde_json's marker for a value written as raw text: the name and field that its own
/// `RawValue` serialises as. Used rather than `RawValue` because that type refuses
/// `NaN`/`Infinity`; the unit test `writes_raw_text_through_serde_json` fails if the
/// marker ever stops working.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

impl Serialize for OpaqueJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut raw = serializer.serialize_struct(RAW_VALUE_TOKEN, 1)?;
        raw.serialize_field(RAW_VALUE_TOKEN, &*self.0)?;
        raw.end()
    }
}

impl<'de> Deserialize<'de> for OpaqueJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        compact(raw)
            .map(|raw| Self::from_raw(&raw))
            .map_err(de::Error::custom)
    }
}

/// Fields a reader does not know, in the order they came, each with its value verbatim.
///
/// Kept so that a document written by a newer writer loses nothing when an older reader
/// updates it; they are written back after the known fields of the same object. Empty
/// (and allocation-free) for every document the Python side writes.
///
/// Names should not repeat the known fields of the object they belong to; writers skip any
/// that do, so the output never has a key twice.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct ExtraFields(Vec<(String, OpaqueJson)>);

impl ExtraFields {
    /// No fields (does not allocate).
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The fields, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &OpaqueJson)> + '_ {
        self.0.iter().map(|(name, value)| (name.as_str(), value))
    }

    /// The fields, in order, with their values mutable.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut OpaqueJson)> + '_ {
        self.0
            .iter_mut()
            .map(|(name, value)| (name.as_str(), value))
    }

    /// The value of the field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&OpaqueJson> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// Sets the field `name`: replaces its value in place if present, otherwise appends it.
    /// Returns the value replaced, if any.
    pub fn insert(&mut self, name: String, value: OpaqueJson) -> Option<OpaqueJson> {
        match self.0.iter_mut().find(|(key, _)| *key == name) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                self.0.push((name, value));
                None
            }
        }
    }

    /// Appends a field read from a document, without looking for an earlier one of the
    /// same name; [`ExtraFields::settle_repeats`] resolves repeats once all are read.
    pub(crate) fn push_read(&mut self, name: String, value: OpaqueJson) {
        self.0.push((name, value));
    }

    /// Leaves one field per name, as Python's `json` does: at the place of the first, with
    /// the value of the last. Linear: a document may hold any number of fields.
    pub(crate) fn settle_repeats(&mut self) {
        if self.0.len() < 2 {
            return;
        }
        // (index of a repeat, index of the first field of its name), in input order.
        let repeats: Vec<(usize, usize)> = {
            let mut first: HashMap<&str, usize> = HashMap::with_capacity(self.0.len());
            self.0
                .iter()
                .enumerate()
                .filter_map(|(index, (name, _))| match first.entry(name.as_str()) {
                    Entry::Occupied(place) => Some((index, *place.get())),
                    Entry::Vacant(place) => {
                        place.insert(index);
                        None
                    }
                })
                .collect()
        };
        if repeats.is_empty() {
            return;
        }
        for &(repeat, first) in &repeats {
            self.0[first].1 = self.0[repeat].1.clone();
        }
        let mut drop = repeats.iter().map(|&(repeat, _)| repeat).peekable();
        let mut index = 0;
        self.0.retain(|_| {
            let keep = drop.peek() != Some(&index);
            if !keep {
                drop.next();
            }
            index += 1;
            keep
        });
    }

    /// Removes the field `name` and returns its value, if present. Keeps the others' order.
    pub fn remove(&mut self, name: &str) -> Option<OpaqueJson> {
        let index = self.0.iter().position(|(key, _)| key == name)?;
        Some(self.0.remove(index).1)
    }

    /// A rough size of the fields as JSON, for sizing output buffers.
    pub(crate) fn estimated_json_len(&self) -> usize {
        self.0
            .iter()
            .map(|(name, value)| name.len() + value.as_str().len() + 4)
            .sum()
    }
}

impl fmt::Debug for ExtraFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a ExtraFields {
    type Item = (&'a str, &'a OpaqueJson);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, OpaqueJson)>,
        fn(&'a (String, OpaqueJson)) -> (&'a str, &'a OpaqueJson),
    >;

    fn into_iter(self) -> Self::IntoIter {
        fn pair(entry: &(String, OpaqueJson)) -> (&str, &OpaqueJson) {
            (entry.0.as_str(), &entry.1)
        }
        self.0.iter().map(pair as fn(&'a (String, OpaqueJson)) -> _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_found_only_outside_strings() {
        for (json, at) in [
            (r#"{"a":"b c","d":1}"#, None),
            (r#"{"a":"b\" c"} "#, Some(13)),
            (r#"{"a":"\\" ,"b":2}"#, Some(9)),
            (r#"["x\"y z", 1]"#, Some(10)),
            (r#""unterminated \" "#, None),
            (r#""ends in an escape\"#, None),
            ("\t[]", Some(0)),
            ("", None),
        ] {
            assert_eq!(first_insignificant_whitespace(json), at, "{json}");
        }
    }

    #[test]
    fn keeps_compact_text_verbatim() {
        let text = r#"{"b":1.50,"a":[true,null,"x"],"e":1E+2,"u":"\u00e9\/"}"#;
        let value = OpaqueJson::parse(text).unwrap();
        assert_eq!(value.as_str(), text);
        assert_eq!(value.to_string(), text);
        assert!(value.is_object());
        assert_eq!(serde_json::to_string(&value).unwrap(), text);
    }

    #[test]
    fn minifies_pretty_input_but_not_strings() {
        let pretty = "  {\n  \"z\" : \"a  b\\t\\\" {x : y} \",\r\n\t\"a\": [ 1 , 2 ],\n  \"m\": {\"k\": \"\\\\\" }\n}\n";
        let value = OpaqueJson::parse(pretty).unwrap();
        assert_eq!(
            value.as_str(),
            r#"{"z":"a  b\t\" {x : y} ","a":[1,2],"m":{"k":"\\"}}"#
        );
        let nested: Vec<OpaqueJson> = serde_json::from_str("[ {\"k\" : \" v \"} , 3 ]").unwrap();
        assert_eq!(nested[0].as_str(), r#"{"k":" v "}"#);
        assert_eq!(nested[1].as_str(), "3");
        assert_eq!(nested[1].kind(), "number");
    }

    #[test]
    fn unicode_in_strings_survives_minifying() {
        let value = OpaqueJson::parse("{ \"k\" : \"é 你好 🚀\u{2028} \" }").unwrap();
        assert_eq!(value.as_str(), "{\"k\":\"é 你好 🚀\u{2028} \"}");
    }

    #[test]
    fn rejects_invalid_json() {
        assert!(OpaqueJson::parse("{\"a\":").is_err());
        assert!(OpaqueJson::parse("1 2").is_err());
        assert!(OpaqueJson::parse("").is_err());
    }

    #[test]
    fn converts_to_and_from_values() {
        let value = serde_json::json!({"a": [1, "two"], "b": null});
        let opaque = OpaqueJson::from_value(&value);
        assert_eq!(opaque.to_value(), value);
        assert!(opaque.is_object());
        assert!(!OpaqueJson::parse("[1]").unwrap().is_object());
        assert_eq!(
            OpaqueJson::parse("1e400").unwrap().to_value(),
            serde_json::Value::Null
        );
    }

    #[test]
    fn keeps_python_only_literals_verbatim() {
        let value =
            OpaqueJson::parse(" {\"a\" : NaN, \"b\": [Infinity, -Infinity], \"a\": 1} ").unwrap();
        let text = r#"{"a":NaN,"b":[Infinity,-Infinity],"a":1}"#;
        assert_eq!(value.as_str(), text);
        assert_eq!(value.to_value(), serde_json::Value::Null);
        assert!(value.is_object());
        assert!(OpaqueJson::parse("nan").is_err());
        assert!(OpaqueJson::parse("[NaN").is_err());
    }

    #[test]
    fn writes_raw_text_through_serde_json() {
        let value = OpaqueJson::parse(r#"{"a":NaN,"s":"x\u00e9"}"#).unwrap();
        let list = vec![value.clone(), OpaqueJson::parse("1.50").unwrap()];
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"[{"a":NaN,"s":"x\u00e9"},1.50]"#
        );
        assert_eq!(
            serde_json::to_string_pretty(&value).unwrap(),
            r#"{"a":NaN,"s":"x\u00e9"}"#
        );
    }

    #[test]
    fn repeats_keep_the_first_place_and_the_last_value() {
        for count in [3, 5000] {
            let mut extra = ExtraFields::new();
            for n in 0..count {
                extra.push_read(format!("k{n}"), OpaqueJson::parse(&n.to_string()).unwrap());
            }
            extra.push_read("k1".into(), OpaqueJson::parse("\"last\"").unwrap());
            extra.push_read("k0".into(), OpaqueJson::parse("true").unwrap());
            extra.push_read("k1".into(), OpaqueJson::parse("\"later\"").unwrap());
            extra.settle_repeats();
            assert_eq!(extra.len(), count);
            let pairs: Vec<(&str, &str)> =
                extra.iter().take(3).map(|(k, v)| (k, v.as_str())).collect();
            assert_eq!(pairs, [("k0", "true"), ("k1", "\"later\""), ("k2", "2")]);
        }
    }

    #[test]
    fn compares_by_text() {
        let a = OpaqueJson::parse(r#"{"a":1,"b":2}"#).unwrap();
        let b = OpaqueJson::parse(r#"{"b":2,"a":1}"#).unwrap();
        let c = OpaqueJson::parse(r#"{ "a" : 1 , "b" : 2 }"#).unwrap();
        assert_ne!(a, b);
        assert_eq!(a, c);
        assert_eq!(format!("{a:?}"), r#"OpaqueJson({"a":1,"b":2})"#);
    }

    #[test]
    fn extra_fields_keep_order_and_replace_in_place() {
        let mut extra = ExtraFields::default();
        assert!(extra.is_empty());
        assert_eq!(extra.0.capacity(), 0);
        extra.insert("z".into(), OpaqueJson::parse("1").unwrap());
        extra.insert("a".into(), OpaqueJson::parse("2").unwrap());
        let old = extra.insert("z".into(), OpaqueJson::parse("3").unwrap());
        assert_eq!(old.map(|v| v.to_string()), Some("1".to_owned()));
        let pairs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k, v.as_str())).collect();
        assert_eq!(pairs, [("z", "3"), ("a", "2")]);
        assert_eq!(extra.len(), 2);
        assert_eq!(extra.get("a").map(OpaqueJson::as_str), Some("2"));
        assert!(extra.get("b").is_none());
        assert_eq!(
            format!("{extra:?}"),
            "{\"z\": OpaqueJson(3), \"a\": OpaqueJson(2)}"
        );
        assert_eq!((&extra).into_iter().count(), 2);
        assert_eq!(
            extra.remove("z").map(|v| v.to_string()),
            Some("3".to_owned())
        );
        assert_eq!(extra.len(), 1);
    }
}
