//! The JSON syntax the Python original reads: `json.loads` on UTF-8 text.
//!
//! Python's `json` module accepts a little more than RFC 8259: the literals `NaN`,
//! `Infinity` and `-Infinity`, duplicate object keys (the last one wins) and lone UTF-16
//! surrogates in `\u` escapes. It refuses what RFC 8259 refuses, plus a byte-order mark and
//! integers of more than 4300 digits (Python's integer-conversion limit). A stored document
//! that passes [`check_json_syntax`] is one the Python side can at least parse; anything
//! else is not JSON at all.
//!
//! The scanner is iterative (an explicit stack), so nesting depth costs heap, never stack.

use super::WireError;

/// Python refuses to convert integer literals longer than this (`sys.int_info`).
const MAX_INT_DIGITS: usize = 4300;

/// Checks that `bytes` is one JSON document as Python's `json.loads` reads it: UTF-8 (no
/// byte-order mark), any top-level value, surrounding whitespace, `NaN`, `Infinity` and
/// `-Infinity` literals, duplicate keys.
///
/// The error, if any, says [`WireError::is_not_json`] and gives the place of the problem.
pub fn check_json_syntax(bytes: &[u8]) -> Result<(), WireError> {
    if let Err(error) = std::str::from_utf8(bytes) {
        let at = error.valid_up_to();
        return Err(not_json(bytes, at, "invalid UTF-8"));
    }
    Scanner { bytes, pos: 0 }.document()
}

/// Where a nested value is, so that the scanner knows what may follow it.
#[derive(Clone, Copy)]
enum Container {
    Array,
    Object,
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn document(mut self) -> Result<(), WireError> {
        if self.bytes.starts_with("\u{feff}".as_bytes()) {
            return Err(self.fail("unexpected byte-order mark"));
        }
        let mut stack: Vec<Container> = Vec::new();
        self.skip_ws();
        'value: loop {
            // At the start of a value.
            match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.eat(b'}') {
                        // An empty object is a complete value.
                    } else {
                        stack.push(Container::Object);
                        self.key()?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.skip_ws();
                    if !self.eat(b']') {
                        stack.push(Container::Array);
                        continue 'value;
                    }
                }
                Some(b'"') => self.string()?,
                _ => self.scalar()?,
            }
            // After a complete value: close containers or move to the next element.
            loop {
                self.skip_ws();
                match stack.last() {
                    None => {
                        return if self.pos == self.bytes.len() {
                            Ok(())
                        } else {
                            Err(self.fail("extra data after the document"))
                        };
                    }
                    Some(Container::Array) => {
                        if self.eat(b',') {
                            self.skip_ws();
                            continue 'value;
                        }
                        if !self.eat(b']') {
                            return Err(self.fail("expecting ',' or ']'"));
                        }
                    }
                    Some(Container::Object) => {
                        if self.eat(b',') {
                            self.skip_ws();
                            self.key()?;
                            continue 'value;
                        }
                        if !self.eat(b'}') {
                            return Err(self.fail("expecting ',' or '}'"));
                        }
                    }
                }
                stack.pop();
            }
        }
    }

    /// An object key, the colon and the whitespace before the value.
    fn key(&mut self) -> Result<(), WireError> {
        if self.peek() != Some(b'"') {
            return Err(self.fail("expecting a property name in double quotes"));
        }
        self.string()?;
        self.skip_ws();
        if !self.eat(b':') {
            return Err(self.fail("expecting ':'"));
        }
        self.skip_ws();
        Ok(())
    }

    /// A string literal, starting at its opening quote.
    fn string(&mut self) -> Result<(), WireError> {
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.peek() {
                None => {
                    self.pos = start;
                    return Err(self.fail("unterminated string"));
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1;
                        }
                        Some(b'u') => {
                            let digits = self.bytes.get(self.pos + 1..self.pos + 5);
                            if !digits.is_some_and(|d| d.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(self.fail("invalid \\uXXXX escape"));
                            }
                            self.pos += 5;
                        }
                        _ => return Err(self.fail("invalid escape")),
                    }
                }
                Some(b) if b < 0x20 => return Err(self.fail("invalid control character")),
                Some(_) => self.pos += 1,
            }
        }
    }

    /// A number or a literal (`true`, `false`, `null`, `NaN`, `Infinity`, `-Infinity`).
    fn scalar(&mut self) -> Result<(), WireError> {
        for literal in [
            &b"true"[..],
            b"false",
            b"null",
            b"NaN",
            b"Infinity",
            b"-Infinity",
        ] {
            if self.bytes[self.pos..].starts_with(literal) {
                self.pos += literal.len();
                return Ok(());
            }
        }
        let start = self.pos;
        self.eat(b'-');
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => {
                self.pos = start;
                return Err(self.fail("expecting a value"));
            }
        }
        let int_digits = self.pos - int_start;
        let mut integer = true;
        // A fraction or exponent counts only when digits follow, as in Python's scanner;
        // otherwise the number ends before it and the next check refuses the rest.
        if self.peek() == Some(b'.') && self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
            self.digits();
            integer = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.peek_at(1), Some(b'+' | b'-')));
            if self.peek_at(1 + sign).is_some_and(|b| b.is_ascii_digit()) {
                self.pos += 1 + sign;
                self.digits();
                integer = false;
            }
        }
        if integer && int_digits > MAX_INT_DIGITS {
            self.pos = start;
            return Err(self.fail("integer has more than 4300 digits"));
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        if found {
            self.pos += 1;
        }
        found
    }

    fn fail(&self, message: &str) -> WireError {
        not_json(self.bytes, self.pos, message)
    }
}

/// A not-JSON error at byte `at`, with its 1-based line and column (in characters).
fn not_json(bytes: &[u8], at: usize, message: &str) -> WireError {
    let before = &bytes[..at.min(bytes.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    // Count characters, not bytes: continuation bytes do not start one.
    let column = 1 + before[line_start..]
        .iter()
        .filter(|&&b| b & 0xC0 != 0x80)
        .count();
    WireError::not_json(message, line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs Python's `json.loads` accepts (checked against Python 3.11).
    const ACCEPTED: &[&str] = &[
        "{}",
        " \t\r\n[]\n",
        "0",
        "-0",
        "-0.0e-0",
        "1E+5",
        "12.5e3",
        "\"\"",
        "\"\\u00e9\\/\\b\\f\\n\\r\\t\\\"\\\\\"",
        "\"\\ud800\"",
        "\"é 你好 🚀\u{2028}\u{7f}\"",
        "true",
        "null",
        "NaN",
        "-Infinity",
        "[NaN,Infinity,-Infinity,{\"a\":NaN}]",
        "{\"a\":1,\"a\":2}",
        "{ \"a\" : [ 1 , { } , [ ] ] , \"b\" : { \"c\" : null } }",
    ];

    /// Inputs Python's `json.loads` refuses, with the reason we give.
    const REFUSED: &[(&str, &str)] = &[
        ("", "expecting a value"),
        ("   ", "expecting a value"),
        ("\u{feff}{}", "byte-order mark"),
        ("{} {}", "extra data"),
        ("[1,]", "expecting a value"),
        ("{\"a\":1,}", "property name"),
        ("{a:1}", "property name"),
        ("{\"a\" 1}", "expecting ':'"),
        ("[1 2]", "expecting ',' or ']'"),
        ("{\"a\":1 \"b\":2}", "expecting ',' or '}'"),
        ("[", "expecting a value"),
        ("{\"a\":", "expecting a value"),
        ("\"abc", "unterminated string"),
        ("\"a\u{1}b\"", "control character"),
        ("\"\\x41\"", "invalid escape"),
        ("\"\\u12g4\"", "\\uXXXX"),
        ("\"\\u12\"", "\\uXXXX"),
        ("01", "extra data"),
        ("1.", "extra data"),
        ("1e", "extra data"),
        ("-", "expecting a value"),
        ("+1", "expecting a value"),
        (".5", "expecting a value"),
        ("nan", "expecting a value"),
        ("+Infinity", "expecting a value"),
        ("-NaN", "expecting a value"),
        ("infinity", "expecting a value"),
        ("True", "expecting a value"),
        ("[1]]", "extra data"),
        ("// c\n{}", "expecting a value"),
        ("{'a':1}", "property name"),
    ];

    #[test]
    fn accepts_what_python_accepts() {
        for input in ACCEPTED {
            if let Err(error) = check_json_syntax(input.as_bytes()) {
                panic!("{input:?}: {error}");
            }
        }
        let long_float = format!("{}.0", "1".repeat(5000));
        let max_int = format!("-{}", "9".repeat(MAX_INT_DIGITS));
        // Deeper than any recursive parser's limit.
        let deep = format!("{}1{}", "[{\"a\":".repeat(100_000), "}]".repeat(100_000));
        for input in [long_float, max_int, deep] {
            if let Err(error) = check_json_syntax(input.as_bytes()) {
                panic!("{}...: {error}", &input[..20]);
            }
        }
    }

    #[test]
    fn refuses_what_python_refuses_saying_why_and_where() {
        for (input, reason) in REFUSED {
            let error = check_json_syntax(input.as_bytes()).expect_err(input);
            assert!(error.is_not_json(), "{input:?}");
            assert!(
                error.message().contains(reason),
                "{input:?}: {error} lacks {reason:?}"
            );
        }
        let error = check_json_syntax(b"{\n  \"\xc3\xa9\": x}").unwrap_err();
        assert_eq!((error.line(), error.column()), (2, 8), "{error}");
        let error = check_json_syntax(b"{\"a\":\"\xff\"}").unwrap_err();
        assert!(error.message().contains("UTF-8"), "{error}");
        assert_eq!((error.line(), error.column()), (1, 7));
        let huge = "1".repeat(MAX_INT_DIGITS + 1);
        let error = check_json_syntax(huge.as_bytes()).unwrap_err();
        assert!(error.message().contains("4300 digits"), "{error}");
    }

    #[test]
    fn agrees_with_serde_json_on_standard_json() {
        // Every standard-JSON input either passes both checks or fails both.
        for input in ACCEPTED.iter().copied().chain(REFUSED.iter().map(|r| r.0)) {
            let python_only = input.contains("NaN")
                || input.contains("Infinity")
                || input.contains("\\ud800")
                || input.len() > 200;
            if python_only {
                continue;
            }
            let serde = serde_json::from_str::<serde::de::IgnoredAny>(input).is_ok();
            let ours = check_json_syntax(input.as_bytes()).is_ok();
            assert_eq!(ours, serde, "{input:?}");
        }
    }
}
