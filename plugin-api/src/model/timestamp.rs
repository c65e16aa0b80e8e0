//! `Timestamp`: a Python `datetime` that remembers whether it was naive or had an offset.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Offset, Timelike, Utc};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// What a well-formed datetime looks like; the reason given for any malformed one.
const EXPECTED_FORMAT: &str = "expected ISO 8601 (YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|±HH:MM])";

/// How much of a rejected input an error message shows.
const MAX_SHOWN_INPUT_CHARS: usize = 64;

/// Unix numbers above this magnitude are milliseconds rather than seconds (pydantic's rule).
const MILLIS_THRESHOLD: i64 = 20_000_000_000;

/// The longest text [`Timestamp::write_to`] produces: an expanded year (sign and six
/// digits), `-MM-DDTHH:MM:SS`, `.ffffff` and a `+HH:MM:SS` offset.
const MAX_LEN: usize = 40;

/// A datetime as the Python side has it: naive (wall-clock time with no offset, what
/// `datetime.now()` returns) or aware with a fixed UTC offset.
///
/// The two forms are kept apart because both reach the store and each must be written
/// back exactly as pydantic writes it (see the [module docs](super)). Precision is the
/// microsecond, like Python's `datetime`; constructors truncate anything finer.
///
/// Equality and hashing compare the form as well as the value: a naive value never equals
/// an aware one, and `12:00+02:00` does not equal `10:00Z`. There is deliberately no `Ord`;
/// order by [`Timestamp::utc_micros`] where a deterministic order is needed.
///
/// Written form (`Display` and `Serialize`): `YYYY-MM-DDTHH:MM:SS`, then `.ffffff` only when
/// the microseconds are not zero, then nothing for a naive value, `Z` for offset zero, or
/// `±HH:MM` otherwise.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Timestamp {
    /// The wall-clock time as written (local time of `offset`, if any).
    naive: NaiveDateTime,
    /// The UTC offset, or `None` for a naive value.
    offset: Option<FixedOffset>,
}

/// A datetime that could not be read: the offending input and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid datetime {}: {reason}", shown_input(.input))]
pub struct TimestampError {
    /// The rejected input, in full.
    input: String,
    /// Why it was rejected.
    reason: String,
}

impl TimestampError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        Self {
            input: input.to_owned(),
            reason: reason.into(),
        }
    }

    /// The rejected input, in full (the message shows at most its first 64 characters).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Why the input was rejected.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// The input quoted for a message, cut to a readable length.
fn shown_input(input: &str) -> String {
    match input.char_indices().nth(MAX_SHOWN_INPUT_CHARS) {
        Some((cut, _)) => format!("{:?}...", &input[..cut]),
        None => format!("{input:?}"),
    }
}

/// Drops everything below the microsecond. A leap second (which Python cannot hold)
/// becomes the last microsecond of its minute.
fn truncate_to_micros(naive: NaiveDateTime) -> NaiveDateTime {
    let nanos = naive.nanosecond();
    let truncated = if nanos >= 1_000_000_000 {
        999_999_000
    } else {
        nanos - nanos % 1_000
    };
    if truncated == nanos {
        naive
    } else {
        naive.with_nanosecond(truncated).unwrap_or(naive)
    }
}

impl Timestamp {
    /// The current time, aware, in UTC, to the microsecond.
    pub fn now_utc() -> Self {
        Self::from_utc(Utc::now())
    }

    /// A naive value: a wall-clock time with no offset.
    pub fn from_naive(naive: NaiveDateTime) -> Self {
        Self {
            naive: truncate_to_micros(naive),
            offset: None,
        }
    }

    /// An aware value that keeps `datetime`'s offset.
    pub fn from_fixed(datetime: DateTime<FixedOffset>) -> Self {
        Self {
            naive: truncate_to_micros(datetime.naive_local()),
            offset: Some(*datetime.offset()),
        }
    }

    /// An aware value in UTC (written with `Z`).
    pub fn from_utc(datetime: DateTime<Utc>) -> Self {
        Self {
            naive: truncate_to_micros(datetime.naive_utc()),
            offset: Some(Utc.fix()),
        }
    }

    /// A value from its parts: the wall-clock time as written and its offset (`None` for
    /// a naive value). The inverse of [`naive_local`](Self::naive_local) and
    /// [`offset`](Self::offset).
    pub fn from_parts(naive: NaiveDateTime, offset: Option<FixedOffset>) -> Self {
        Self {
            naive: truncate_to_micros(naive),
            offset,
        }
    }

    /// The wall-clock time as written, without its offset.
    pub fn naive_local(&self) -> NaiveDateTime {
        self.naive
    }

    /// The UTC offset, or `None` for a naive value.
    pub fn offset(&self) -> Option<FixedOffset> {
        self.offset
    }

    /// Whether the value has no offset.
    pub fn is_naive(&self) -> bool {
        self.offset.is_none()
    }

    /// The aware value as a chrono datetime, or `None` for a naive value.
    pub fn to_fixed(&self) -> Option<DateTime<FixedOffset>> {
        let offset = self.offset?;
        self.naive.and_local_timezone(offset).single()
    }

    /// Microseconds since the Unix epoch, reading a naive value as if it were UTC.
    ///
    /// Naive values carry no zone, so this is not a true instant for them; it exists to give
    /// mixed documents a deterministic order, and is used only for that.
    pub fn utc_micros(&self) -> i64 {
        let wall = self.naive.and_utc().timestamp_micros();
        match self.offset {
            None => wall,
            Some(offset) => wall - i64::from(offset.local_minus_utc()) * 1_000_000,
        }
    }

    /// Reads the forms pydantic accepts for a `datetime` given as a string.
    ///
    /// - `YYYY-MM-DD` alone: naive midnight;
    /// - otherwise the date, a `T`, `t` or space, `HH:MM` or `HH:MM:SS`, and an optional
    ///   fraction of 1 to 9 digits (fewer than 6 are scaled: `.5` is 500000 µs; digits past
    ///   the sixth are dropped);
    /// - then nothing (naive), `Z`/`z` (UTC), or an offset `±HH:MM`, `±HHMM` or `±HH`
    ///   (`±HH:MM:SS` is read too). `+00:00` is UTC and is written back as `Z`.
    ///
    /// Years run from 0001 to 9999, as in Python.
    pub fn parse(input: &str) -> Result<Self, TimestampError> {
        Parser::new(input).parse()
    }

    /// Reads a Unix time in seconds, as pydantic does for a number: the result is aware
    /// UTC. Like pydantic, a magnitude above 2e10 is taken as milliseconds.
    fn from_unix_int(value: i64) -> Result<Self, TimestampError> {
        let micros = if value.unsigned_abs() > MILLIS_THRESHOLD.unsigned_abs() {
            value.checked_mul(1_000)
        } else {
            value.checked_mul(1_000_000)
        };
        micros
            .and_then(Self::from_unix_micros)
            .ok_or_else(|| TimestampError::new(&value.to_string(), "Unix time out of range"))
    }

    /// [`Timestamp::from_unix_int`] for a number with a fraction.
    fn from_unix_float(value: f64) -> Result<Self, TimestampError> {
        let scale = if value.abs() > MILLIS_THRESHOLD as f64 {
            1e3
        } else {
            1e6
        };
        let micros = (value * scale).round();
        // The bound keeps the cast below exact; chrono's range is far smaller anyway.
        let in_range = micros.is_finite() && micros.abs() < 9.0e18;
        let result = if in_range {
            Self::from_unix_micros(micros as i64)
        } else {
            None
        };
        result.ok_or_else(|| TimestampError::new(&value.to_string(), "Unix time out of range"))
    }

    fn from_unix_micros(micros: i64) -> Option<Self> {
        let datetime = DateTime::<Utc>::from_timestamp_micros(micros)?;
        if !(1..=9999).contains(&datetime.year()) {
            return None;
        }
        Some(Self::from_utc(datetime))
    }

    /// Writes the wire form into `buf` and returns it. No allocation, no format strings:
    /// this runs for every timestamp of every document written.
    fn write_to<'b>(&self, buf: &'b mut [u8; MAX_LEN]) -> &'b str {
        let mut w = DigitWriter { buf, len: 0 };
        let date = self.naive.date();
        let year = date.year();
        if (0..=9999).contains(&year) {
            w.digits(year.unsigned_abs(), 4);
        } else {
            // ISO 8601 expanded years; Python cannot hold these, but chrono can.
            w.byte(if year < 0 { b'-' } else { b'+' });
            w.digits(year.unsigned_abs(), 6);
        }
        w.byte(b'-');
        w.digits(date.month(), 2);
        w.byte(b'-');
        w.digits(date.day(), 2);
        w.byte(b'T');
        let time = self.naive.time();
        w.digits(time.hour(), 2);
        w.byte(b':');
        w.digits(time.minute(), 2);
        w.byte(b':');
        w.digits(time.second(), 2);
        let micros = (time.nanosecond() / 1_000).min(999_999);
        if micros != 0 {
            w.byte(b'.');
            w.digits(micros, 6);
        }
        if let Some(offset) = self.offset {
            let seconds = offset.local_minus_utc();
            if seconds == 0 {
                w.byte(b'Z');
            } else {
                w.byte(if seconds < 0 { b'-' } else { b'+' });
                let seconds = seconds.unsigned_abs();
                w.digits(seconds / 3600, 2);
                w.byte(b':');
                w.digits(seconds / 60 % 60, 2);
                if seconds % 60 != 0 {
                    w.byte(b':');
                    w.digits(seconds % 60, 2);
                }
            }
        }
        let len = w.len;
        // Only ASCII was written, so this never fails.
        std::str::from_utf8(&buf[..len]).unwrap_or_default()
    }
}

/// Appends ASCII to a fixed buffer sized for the longest output.
struct DigitWriter<'b> {
    buf: &'b mut [u8; MAX_LEN],
    len: usize,
}

impl DigitWriter<'_> {
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// Writes `value` as exactly `width` decimal digits (zero-padded; higher digits dropped).
    fn digits(&mut self, mut value: u32, width: usize) {
        let end = self.len + width;
        if end > self.buf.len() {
            return;
        }
        for slot in self.buf[self.len..end].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.len = end;
    }
}

/// A cursor over a datetime string.
struct Parser<'a> {
    input: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Self {
            input,
            bytes: input.as_bytes(),
            pos: 0,
        }
    }

    fn error(&self, reason: impl Into<String>) -> TimestampError {
        TimestampError::new(self.input, reason)
    }

    fn malformed(&self) -> TimestampError {
        self.error(EXPECTED_FORMAT)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, expected: u8) -> bool {
        if self.peek() == Some(expected) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, expected: u8) -> Result<(), TimestampError> {
        if self.eat(expected) {
            Ok(())
        } else {
            Err(self.malformed())
        }
    }

    /// Exactly `count` ASCII digits as a number.
    fn number(&mut self, count: usize) -> Result<u32, TimestampError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + count)
            .ok_or_else(|| self.malformed())?;
        let mut value = 0u32;
        for &b in digits {
            if !b.is_ascii_digit() {
                return Err(self.malformed());
            }
            value = value * 10 + u32::from(b - b'0');
        }
        self.pos += count;
        Ok(value)
    }

    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    fn parse(mut self) -> Result<Timestamp, TimestampError> {
        let date = self.date()?;
        if self.at_end() {
            return Ok(Timestamp {
                naive: date.and_time(chrono::NaiveTime::MIN),
                offset: None,
            });
        }
        match self.peek() {
            Some(b'T' | b't' | b' ') => self.pos += 1,
            _ => return Err(self.malformed()),
        }
        let naive = self.time(date)?;
        let offset = self.offset()?;
        if !self.at_end() {
            return Err(self.malformed());
        }
        Ok(Timestamp { naive, offset })
    }

    fn date(&mut self) -> Result<NaiveDate, TimestampError> {
        let year = self.number(4)?;
        self.expect(b'-')?;
        let month = self.number(2)?;
        self.expect(b'-')?;
        let day = self.number(2)?;
        if year == 0 {
            return Err(self.error("year 0000 is out of range (0001..=9999)"));
        }
        if !(1..=12).contains(&month) {
            return Err(self.error(format!("month {month:02} is out of range (01..=12)")));
        }
        // `year` has four digits, so the cast cannot wrap.
        NaiveDate::from_ymd_opt(year as i32, month, day).ok_or_else(|| {
            self.error(format!(
                "day {day:02} is out of range for {year:04}-{month:02}"
            ))
        })
    }

    fn time(&mut self, date: NaiveDate) -> Result<NaiveDateTime, TimestampError> {
        let hour = self.number(2)?;
        self.expect(b':')?;
        let minute = self.number(2)?;
        let second = if self.eat(b':') { self.number(2)? } else { 0 };
        let mut micros = 0;
        if self.eat(b'.') {
            let start = self.pos;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.pos += 1;
            }
            let digits = &self.bytes[start..self.pos];
            if digits.is_empty() || digits.len() > 9 {
                return Err(self.error(format!(
                    "the fraction of a second must have 1 to 9 digits; {EXPECTED_FORMAT}"
                )));
            }
            for place in 0..6 {
                let digit = digits.get(place).map_or(0, |b| u32::from(b - b'0'));
                micros = micros * 10 + digit;
            }
        }
        if hour > 23 {
            return Err(self.error(format!("hour {hour:02} is out of range (00..=23)")));
        }
        if minute > 59 {
            return Err(self.error(format!("minute {minute:02} is out of range (00..=59)")));
        }
        if second > 59 {
            return Err(self.error(format!("second {second:02} is out of range (00..=59)")));
        }
        date.and_hms_micro_opt(hour, minute, second, micros)
            .ok_or_else(|| self.malformed())
    }

    fn offset(&mut self) -> Result<Option<FixedOffset>, TimestampError> {
        let sign = match self.peek() {
            None => return Ok(None),
            Some(b'Z' | b'z') => {
                self.pos += 1;
                return Ok(Some(Utc.fix()));
            }
            Some(b'+') => 1,
            Some(b'-') => -1,
            Some(_) => return Err(self.malformed()),
        };
        self.pos += 1;
        let hours = self.number(2)?;
        let mut minutes = 0;
        let mut seconds = 0;
        if self.eat(b':') {
            minutes = self.number(2)?;
            if self.eat(b':') {
                seconds = self.number(2)?;
            }
        } else if !self.at_end() {
            minutes = self.number(2)?;
        }
        if hours > 23 || minutes > 59 || seconds > 59 {
            return Err(self.error("UTC offset out of range (-23:59..=+23:59)"));
        }
        // At most 86399, so the cast cannot wrap.
        let total = (hours * 3600 + minutes * 60 + seconds) as i32;
        FixedOffset::east_opt(sign * total)
            .map(Some)
            .ok_or_else(|| self.error("UTC offset out of range (-23:59..=+23:59)"))
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; MAX_LEN];
        f.pad(self.write_to(&mut buf))
    }
}

impl From<NaiveDateTime> for Timestamp {
    fn from(naive: NaiveDateTime) -> Self {
        Self::from_naive(naive)
    }
}

impl From<DateTime<FixedOffset>> for Timestamp {
    fn from(datetime: DateTime<FixedOffset>) -> Self {
        Self::from_fixed(datetime)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(datetime: DateTime<Utc>) -> Self {
        Self::from_utc(datetime)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; MAX_LEN];
        serializer.serialize_str(self.write_to(&mut buf))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    /// Reads a string (see [`Timestamp::parse`]) or a Unix-time number (aware UTC).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TimestampVisitor)
    }
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an ISO 8601 datetime string or a Unix time")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
        Timestamp::parse(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
        Timestamp::from_unix_int(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
        match i64::try_from(v) {
            Ok(v) => Timestamp::from_unix_int(v).map_err(E::custom),
            Err(_) => Err(E::custom(TimestampError::new(
                &v.to_string(),
                "Unix time out of range",
            ))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
        Timestamp::from_unix_float(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(input: &str) -> String {
        Timestamp::parse(input)
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .to_string()
    }

    #[test]
    fn writes_and_reads_the_python_forms() {
        let table = [
            // (input, written back)
            ("2025-01-01T00:00:00", "2025-01-01T00:00:00"),
            ("2025-11-03T14:21:07.512034", "2025-11-03T14:21:07.512034"),
            ("2025-06-30T23:59:59.900000Z", "2025-06-30T23:59:59.900000Z"),
            (
                "2025-03-09T08:00:00.123000+02:00",
                "2025-03-09T08:00:00.123000+02:00",
            ),
            (
                "2024-02-29T12:30:00.000001-09:30",
                "2024-02-29T12:30:00.000001-09:30",
            ),
            (
                "2025-11-03T14:21:07.512034+00:00",
                "2025-11-03T14:21:07.512034Z",
            ),
            ("2025-11-03T14:21:07-00:00", "2025-11-03T14:21:07Z"),
            ("2025-11-03", "2025-11-03T00:00:00"),
            ("2025-11-03 14:21:07.512034", "2025-11-03T14:21:07.512034"),
            ("2025-11-03t14:21:07z", "2025-11-03T14:21:07Z"),
            ("2025-11-03T14:21", "2025-11-03T14:21:00"),
            ("2025-11-03T14:21:07.5Z", "2025-11-03T14:21:07.500000Z"),
            ("2025-11-03T14:21:07.000000", "2025-11-03T14:21:07"),
            (
                "2025-11-03T14:21:07.123456789",
                "2025-11-03T14:21:07.123456",
            ),
            ("2025-11-03T14:21:07+0530", "2025-11-03T14:21:07+05:30"),
            ("2025-11-03T14:21:07-03", "2025-11-03T14:21:07-03:00"),
            ("0001-01-01T00:00:00", "0001-01-01T00:00:00"),
            ("9999-12-31T23:59:59.999999", "9999-12-31T23:59:59.999999"),
        ];
        for (input, expected) in table {
            assert_eq!(roundtrip(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn keeps_naive_and_aware_apart() {
        let naive = Timestamp::parse("2025-01-01T00:00:00").unwrap();
        let utc = Timestamp::parse("2025-01-01T00:00:00Z").unwrap();
        let plus_zero = Timestamp::parse("2025-01-01T00:00:00+00:00").unwrap();
        assert!(naive.is_naive());
        assert!(!utc.is_naive());
        assert_ne!(naive, utc);
        assert_eq!(utc, plus_zero);
        assert_eq!(utc.offset(), FixedOffset::east_opt(0));
    }

    #[test]
    fn rejects_malformed_and_out_of_range_input() {
        let table = [
            ("yesterday", "expected ISO 8601"),
            ("", "expected ISO 8601"),
            ("2025-13-01", "month 13"),
            ("2025-00-10", "month 00"),
            ("2025-04-31", "day 31"),
            ("2023-02-29T00:00:00", "day 29 is out of range for 2023-02"),
            ("0000-01-01", "year 0000"),
            ("2025-01-01T24:00:00", "hour 24"),
            ("2025-01-01T10:60:00", "minute 60"),
            ("2025-01-01T10:00:60", "second 60"),
            ("2025-01-01T10:00:00.", "1 to 9 digits"),
            ("2025-01-01T10:00:00.1234567890", "1 to 9 digits"),
            ("2025-01-01T10:00:00+24:00", "offset"),
            ("2025-01-01T10:00:00+02:60", "offset"),
            ("2025-01-01T10:00:00+2", "expected ISO 8601"),
            ("2025-01-01T10:00:00Zjunk", "expected ISO 8601"),
            ("2025-01-01X10:00:00", "expected ISO 8601"),
            ("2025-1-01", "expected ISO 8601"),
            ("+2025-01-01", "expected ISO 8601"),
            ("2025-01-01T10", "expected ISO 8601"),
            ("2025-01-01T１0:00", "expected ISO 8601"),
        ];
        for (input, needle) in table {
            let err = Timestamp::parse(input).expect_err(input);
            let message = err.to_string();
            assert!(
                message.contains(needle),
                "{input:?}: {message:?} lacks {needle:?}"
            );
            assert!(message.starts_with("invalid datetime \""), "{message}");
            assert_eq!(err.input(), input);
        }
    }

    #[test]
    fn error_message_names_the_input_and_the_expected_form() {
        let err = Timestamp::parse("yesterday").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid datetime \"yesterday\": expected ISO 8601 \
             (YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|±HH:MM])"
        );
        let long = "x".repeat(500);
        let message = Timestamp::parse(&long).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("..."));
    }

    #[test]
    fn never_panics_on_odd_input() {
        let samples = [
            "2025-01-01T",
            "2025-01-01T1",
            "2025-01-01T10:",
            "2025-01-01T10:0",
            "2025-01-01T10:00:",
            "2025-01-01T10:00:00+",
            "2025-01-01T10:00:00+0",
            "2025-01-01T10:00:00+01:",
            "2025-01-01T10:00:00+01:0",
            "9999-12-31T23:59:59-23:59",
            "é",
            "2025-01-0é",
            "2025-01-01T10:00:00.é",
            "\u{0}",
        ];
        for input in samples {
            let _ = Timestamp::parse(input);
        }
        for len in 0..=32 {
            let base = "2025-11-03T14:21:07.512034+02:00";
            let _ = Timestamp::parse(&base[..len.min(base.len())]);
        }
    }

    #[test]
    fn reads_unix_numbers_as_aware_utc() {
        let ts: Timestamp = serde_json::from_str("1700000000").unwrap();
        assert_eq!(ts.to_string(), "2023-11-14T22:13:20Z");
        let ts: Timestamp = serde_json::from_str("1700000000.25").unwrap();
        assert_eq!(ts.to_string(), "2023-11-14T22:13:20.250000Z");
        let ts: Timestamp = serde_json::from_str("-1").unwrap();
        assert_eq!(ts.to_string(), "1969-12-31T23:59:59Z");
        // pydantic reads large magnitudes as milliseconds.
        let ts: Timestamp = serde_json::from_str("1700000000123").unwrap();
        assert_eq!(ts.to_string(), "2023-11-14T22:13:20.123000Z");
        for bad in ["1e300", "18446744073709551615", "-9223372036854775808"] {
            let err = serde_json::from_str::<Timestamp>(bad).unwrap_err();
            assert!(err.to_string().contains("out of range"), "{bad}: {err}");
        }
        let err = serde_json::from_str::<Timestamp>("true").unwrap_err();
        assert!(err.to_string().contains("ISO 8601"), "{err}");
    }

    #[test]
    fn serializes_as_a_json_string() {
        let ts = Timestamp::parse("2025-03-09T08:00:00.123+02:00").unwrap();
        assert_eq!(
            serde_json::to_string(&ts).unwrap(),
            "\"2025-03-09T08:00:00.123000+02:00\""
        );
        let back: Timestamp = serde_json::from_str("\"2025-03-09T08:00:00.123000+02:00\"").unwrap();
        assert_eq!(back, ts);
    }

    #[test]
    fn utc_micros_reads_naive_as_utc_and_applies_offsets() {
        let naive = Timestamp::parse("2025-01-01T02:00:00").unwrap();
        let utc = Timestamp::parse("2025-01-01T02:00:00Z").unwrap();
        let plus_two = Timestamp::parse("2025-01-01T02:00:00+02:00").unwrap();
        let minus = Timestamp::parse("2025-01-01T02:00:00.000001-09:30").unwrap();
        assert_eq!(naive.utc_micros(), 1_735_696_800_000_000);
        assert_eq!(utc.utc_micros(), naive.utc_micros());
        assert_eq!(plus_two.utc_micros(), naive.utc_micros() - 7_200_000_000);
        assert_eq!(minus.utc_micros(), naive.utc_micros() + 34_200_000_000 + 1);
        assert_eq!(Timestamp::parse("1970-01-01").unwrap().utc_micros(), 0);
    }

    #[test]
    fn constructors_truncate_to_microseconds() {
        let naive = NaiveDate::from_ymd_opt(2025, 1, 2)
            .unwrap()
            .and_hms_nano_opt(3, 4, 5, 123_456_789)
            .unwrap();
        let ts = Timestamp::from_naive(naive);
        assert_eq!(ts.to_string(), "2025-01-02T03:04:05.123456");
        assert_eq!(ts.naive_local().nanosecond(), 123_456_000);

        let offset = FixedOffset::west_opt(9 * 3600 + 1800).unwrap();
        let fixed = naive.and_local_timezone(offset).unwrap();
        let ts = Timestamp::from_fixed(fixed);
        assert_eq!(ts.to_string(), "2025-01-02T03:04:05.123456-09:30");
        assert_eq!(ts.naive_local(), Timestamp::from_naive(naive).naive_local());
        assert_eq!(
            ts.to_fixed().map(|d| d.offset().local_minus_utc()),
            Some(-34200)
        );

        let utc = Timestamp::from_utc(naive.and_utc());
        assert_eq!(utc.to_string(), "2025-01-02T03:04:05.123456Z");

        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap();
        assert_eq!(
            Timestamp::from_naive(leap).to_string(),
            "2016-12-31T23:59:59.999999"
        );

        let now = Timestamp::now_utc();
        assert_eq!(now.naive_local().nanosecond() % 1_000, 0);
        assert_eq!(now.offset(), FixedOffset::east_opt(0));
    }

    #[test]
    fn writes_offsets_with_seconds_and_expanded_years() {
        let offset = FixedOffset::east_opt(3600 + 60 + 1).unwrap();
        let naive = NaiveDate::from_ymd_opt(2025, 1, 2)
            .unwrap()
            .and_hms_opt(3, 4, 5)
            .unwrap();
        let ts = Timestamp::from_fixed(naive.and_local_timezone(offset).unwrap());
        assert_eq!(ts.to_string(), "2025-01-02T03:04:05+01:01:01");
        assert_eq!(Timestamp::parse(&ts.to_string()).unwrap(), ts);

        let far = NaiveDate::from_ymd_opt(-12345, 6, 7)
            .unwrap()
            .and_hms_micro_opt(8, 9, 10, 11)
            .unwrap();
        let ts = Timestamp::from_fixed(
            far.and_local_timezone(FixedOffset::east_opt(-1).unwrap())
                .unwrap(),
        );
        assert_eq!(ts.to_string(), "-012345-06-07T08:09:10.000011-00:00:01");
        assert!(ts.to_string().len() <= MAX_LEN);
    }
}
