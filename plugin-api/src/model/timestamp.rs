//! `Timestamp`: a Python `datetime` that remembers whether it was naive or had an offset.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Offset, Timelike, Utc};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};
use speedate::{DateTimeConfig, MicrosecondsPrecisionOverflowBehavior, TimeConfig, TimestampUnit};
use strum::EnumMessage;

/// What a well-formed datetime looks like; the reason given for any malformed one.
const EXPECTED_FORMAT: &str =
    "expected ISO 8601 (YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|±HH:MM]) or a Unix time";

/// How much of a rejected input an error message shows.
const MAX_SHOWN_INPUT_CHARS: usize = 64;

/// Unix numbers above this magnitude are milliseconds rather than seconds (pydantic's rule).
const MILLIS_THRESHOLD: i64 = 20_000_000_000;

/// speedate's reason for refusing a Unix time, in words.
fn unix_reason(error: &speedate::ParseError) -> String {
    let reason = error.get_documentation().unwrap_or("out of range");
    format!("Unix time out of range ({reason})")
}

/// The longest text [`Timestamp::write_to`] produces: an expanded year (sign and six
/// digits), `-MM-DDTHH:MM:SS`, `.ffffff` and a `+HH:MM` offset.
pub(crate) const MAX_LEN: usize = 40;

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
/// `±HH:MM` otherwise: the offset in whole minutes, as pydantic writes it and can read it
/// back (an offset's seconds are dropped).
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

    /// Reads a `datetime` given as a string, exactly as pydantic does (with its own
    /// parser, speedate):
    ///
    /// - `YYYY-MM-DD` alone: naive midnight;
    /// - otherwise the date, a `T`, `t`, `_` or space, `HH:MM` or `HH:MM:SS`, and an
    ///   optional fraction (`.` or `,`, any number of digits; those past the sixth are
    ///   dropped);
    /// - then nothing (naive), `Z`/`z` (UTC), or an offset `±HH:MM` or `±HHMM`, less than
    ///   24 hours. A zero offset is UTC and is written back as `Z`;
    /// - or a Unix time (`"1700000000"`, `"1.7e9"`, `"-1.5"`): aware UTC, and taken as
    ///   milliseconds when its magnitude is above 2e10, as for a number.
    ///
    /// Years run from 0001 to 9999, as in Python.
    pub fn parse(input: &str) -> Result<Self, TimestampError> {
        let bytes = input.as_bytes();
        match speedate::DateTime::parse_bytes_with_config(bytes, &pydantic_config()) {
            Ok(parsed) => from_speedate(&parsed, input),
            // pydantic's second try: a date alone is midnight, naive.
            Err(error) => match speedate::Date::parse_bytes_rfc3339(bytes) {
                Ok(date) => {
                    let midnight = speedate::DateTime {
                        date,
                        time: speedate::Time {
                            hour: 0,
                            minute: 0,
                            second: 0,
                            microsecond: 0,
                            tz_offset: None,
                        },
                    };
                    from_speedate(&midnight, input)
                }
                Err(_) => Err(TimestampError::new(input, speedate_reason(&error))),
            },
        }
    }

    /// Reads a Unix time given as a JSON integer, as pydantic does: aware UTC, in seconds,
    /// or in milliseconds when the magnitude is above 2e10.
    fn from_unix_int(value: i64) -> Result<Self, TimestampError> {
        let input = value.to_string();
        match speedate::DateTime::from_timestamp_with_config(value, 0, &pydantic_config()) {
            Ok(parsed) => from_speedate(&parsed, &input),
            Err(error) => Err(TimestampError::new(&input, unix_reason(&error))),
        }
    }

    /// [`Timestamp::from_unix_int`] for a JSON number with a fraction. Follows pydantic's
    /// arithmetic, quirks included: the whole part is the floor, and the fraction's
    /// absolute value, rounded to the microsecond (millisecond units: to the microsecond
    /// of a millisecond), is added to it (so `-1.25` is read as `-2 + 0.25`).
    fn from_unix_float(value: f64) -> Result<Self, TimestampError> {
        let input = value.to_string();
        if value.is_nan() {
            return Err(TimestampError::new(&input, "NaN values not permitted"));
        }
        let scale = if value.abs() > MILLIS_THRESHOLD as f64 {
            1e3
        } else {
            1e6
        };
        let micros = (value.fract().abs() * scale).round();
        // `as` saturates: an infinite or huge value lands outside speedate's range.
        let whole = value.floor() as i64;
        match speedate::DateTime::from_timestamp_with_config(
            whole,
            micros as u32,
            &pydantic_config(),
        ) {
            Ok(parsed) => from_speedate(&parsed, &input),
            Err(error) => Err(TimestampError::new(&input, unix_reason(&error))),
        }
    }

    /// Writes the wire form into `buf` and returns it. No allocation, no format strings:
    /// this runs for every timestamp of every document written.
    pub(crate) fn write_to<'b>(&self, buf: &'b mut [u8; MAX_LEN]) -> &'b str {
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
                // As pydantic writes it: whole minutes, the seconds dropped (pydantic
                // cannot read `±HH:MM:SS`), so a nonzero offset under a minute is
                // `+00:00` or `-00:00`.
                w.byte(if seconds < 0 { b'-' } else { b'+' });
                let minutes = seconds.unsigned_abs() / 60;
                w.digits(minutes / 60, 2);
                w.byte(b':');
                w.digits(minutes % 60, 2);
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

/// How pydantic configures speedate for a `datetime` field: digits past the microsecond
/// are dropped, Unix times are aware UTC, and their unit is inferred from the magnitude.
fn pydantic_config() -> DateTimeConfig {
    DateTimeConfig {
        timestamp_unit: TimestampUnit::Infer,
        time_config: TimeConfig {
            microseconds_precision_overflow_behavior:
                MicrosecondsPrecisionOverflowBehavior::Truncate,
            unix_timestamp_offset: Some(0),
        },
    }
}

/// speedate's result as a [`Timestamp`], refusing what Python's `datetime` cannot hold.
fn from_speedate(parsed: &speedate::DateTime, input: &str) -> Result<Timestamp, TimestampError> {
    let (date, time) = (&parsed.date, &parsed.time);
    if date.year == 0 {
        return Err(TimestampError::new(input, "year 0 is out of range"));
    }
    let naive = NaiveDate::from_ymd_opt(
        i32::from(date.year),
        u32::from(date.month),
        u32::from(date.day),
    )
    .and_then(|d| {
        d.and_hms_micro_opt(
            u32::from(time.hour),
            u32::from(time.minute),
            u32::from(time.second),
            time.microsecond,
        )
    })
    .ok_or_else(|| TimestampError::new(input, "date or time out of range"))?;
    let offset = match time.tz_offset {
        None => None,
        Some(seconds) => Some(
            FixedOffset::east_opt(seconds)
                .ok_or_else(|| TimestampError::new(input, "UTC offset out of range"))?,
        ),
    };
    Ok(Timestamp { naive, offset })
}

/// speedate's reason for refusing an input, in words.
fn speedate_reason(error: &speedate::ParseError) -> String {
    let reason = error.get_documentation().unwrap_or("malformed");
    format!("{reason}; {EXPECTED_FORMAT}")
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

    /// (input, what pydantic 2.13 writes back after reading it), as pydantic gave them.
    const ACCEPTED: &[(&str, &str)] = &[
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
        ("2025-11-03_14:21:07.512034", "2025-11-03T14:21:07.512034"),
        ("2025-11-03t14:21:07z", "2025-11-03T14:21:07Z"),
        ("2025-11-03T14:21", "2025-11-03T14:21:00"),
        ("2025-11-03T14:21:07.5Z", "2025-11-03T14:21:07.500000Z"),
        ("2025-11-03T14:21:07,5", "2025-11-03T14:21:07.500000"),
        ("2025-11-03T14:21:07.000000", "2025-11-03T14:21:07"),
        (
            "2025-11-03T14:21:07.123456789",
            "2025-11-03T14:21:07.123456",
        ),
        (
            "2025-11-03T14:21:07.12345678901234567890",
            "2025-11-03T14:21:07.123456",
        ),
        ("2025-11-03T14:21:07.9999999", "2025-11-03T14:21:07.999999"),
        ("2025-01-01T00:00:00.000000001", "2025-01-01T00:00:00"),
        ("2025-11-03T14:21:07+0530", "2025-11-03T14:21:07+05:30"),
        ("2025-11-03T14:21:07-0000", "2025-11-03T14:21:07Z"),
        ("0001-01-01T00:00:00", "0001-01-01T00:00:00"),
        ("9999-12-31T23:59:59.999999", "9999-12-31T23:59:59.999999"),
        (
            "9999-12-31T23:59:59.999999-23:59",
            "9999-12-31T23:59:59.999999-23:59",
        ),
        // Unix times in a string: aware UTC, milliseconds above 2e10.
        ("1700000000", "2023-11-14T22:13:20Z"),
        ("+1700000000", "2023-11-14T22:13:20Z"),
        ("-1", "1969-12-31T23:59:59Z"),
        ("0", "1970-01-01T00:00:00Z"),
        ("1700000000.5", "2023-11-14T22:13:20.500000Z"),
        ("1700000000.1234567", "2023-11-14T22:13:20.123457Z"),
        ("1700000000123", "2023-11-14T22:13:20.123000Z"),
        ("-1.25", "1969-12-31T23:59:58.750000Z"),
        ("1.7e9", "2023-11-14T22:13:20Z"),
        ("1.5E9", "2017-07-14T02:40:00Z"),
        ("1700000000.", "2023-11-14T22:13:20Z"),
        ("20000000000", "2603-10-11T11:33:20Z"),
        ("20000000001", "1970-08-20T11:33:20.001000Z"),
        ("-20000000001", "1969-05-14T12:26:39.999000Z"),
        ("20231114", "1970-08-23T03:45:14Z"),
        ("12345", "1970-01-01T03:25:45Z"),
    ];

    /// Inputs pydantic 2.13 refuses, and a word of our reason.
    const REFUSED: &[(&str, &str)] = &[
        ("yesterday", "too short"),
        ("", "too short"),
        ("2025-13-01", "month"),
        ("2025-00-10", "month"),
        ("2025-04-31", "day"),
        ("2023-02-29T00:00:00", "day"),
        ("0000-01-01", "year 0"),
        ("2025-01-01T24:00:00", "hour"),
        ("2025-01-01T10:60:00", "minute"),
        ("2025-01-01T10:00:60", "second"),
        ("2025-01-01T10:00:00.", "fraction"),
        ("2025-01-01T10:00:00+24:00", "offset"),
        ("2025-01-01T10:00:00+02:60", "timezone minute"),
        ("2025-01-01T10:00:00+2", "timezone"),
        ("2025-01-01T10:00:00+02", "timezone"),
        ("2025-01-01T10:00:00+01:01:01", "extra characters"),
        ("2025-01-01T10:00:00Zjunk", "extra characters"),
        ("2025-01-01T10:00:00 Z", "timezone"),
        ("2025-01-01X10:00:00", "separator"),
        ("2025-1-01", "ISO 8601"),
        ("+2025-01-01", "ISO 8601"),
        ("2025-01-01T", "ISO 8601"),
        ("2025-01-01T10", "ISO 8601"),
        ("2025-01-01T１0:00", "ISO 8601"),
        (" 2025-01-01", "ISO 8601"),
        ("2025-01-01 ", "ISO 8601"),
        ("2025-01-01Z", "ISO 8601"),
        ("1e10", "ISO 8601"),
        ("nan", "ISO 8601"),
        ("inf", "ISO 8601"),
        ("1_700_000_000", "ISO 8601"),
        ("17000000000000000", "after 9999"),
    ];

    #[test]
    fn reads_what_pydantic_reads_and_writes_what_it_writes() {
        for (input, expected) in ACCEPTED {
            assert_eq!(roundtrip(input), *expected, "input {input:?}");
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
        assert!(!Timestamp::parse("1700000000").unwrap().is_naive());
    }

    #[test]
    fn refuses_what_pydantic_refuses() {
        for (input, needle) in REFUSED {
            let err = Timestamp::parse(input).expect_err(input);
            let message = err.to_string();
            assert!(
                message.contains(needle),
                "{input:?}: {message:?} lacks {needle:?}"
            );
            assert!(message.starts_with("invalid datetime \""), "{message}");
            assert_eq!(err.input(), *input);
        }
    }

    #[test]
    fn error_message_names_the_input_and_the_expected_form() {
        let err = Timestamp::parse("yesterday").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid datetime \"yesterday\": input is too short; expected ISO 8601 \
             (YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|±HH:MM]) or a Unix time"
        );
        let long = "x".repeat(500);
        let message = Timestamp::parse(&long).unwrap_err().to_string();
        assert!(message.len() < 250, "{message}");
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
        // pydantic's float arithmetic, quirks included (figures from pydantic 2.13).
        for (number, expected) in [
            ("-1.25", "1969-12-31T23:59:58.250000Z"),
            ("-1e-06", "1969-12-31T23:59:59.000001Z"),
            ("1e-07", "1970-01-01T00:00:00Z"),
            ("5e-07", "1970-01-01T00:00:00.000001Z"),
            ("1700000000.1234567", "2023-11-14T22:13:20.123457Z"),
            ("1700000000123.4568", "2023-11-14T22:13:20.123457Z"),
            ("20000000000.5", "2603-10-11T11:33:20.000500Z"),
            ("253402300800", "1978-01-11T21:31:40.800000Z"),
            ("-11676096001", "1599-12-31T23:59:59Z"),
            ("1.7e9", "2023-11-14T22:13:20Z"),
        ] {
            let ts: Timestamp = serde_json::from_str(number).unwrap();
            assert_eq!(ts.to_string(), expected, "{number}");
        }
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
    fn writes_offsets_in_whole_minutes_as_pydantic_does() {
        let naive = NaiveDate::from_ymd_opt(2025, 1, 2)
            .unwrap()
            .and_hms_opt(3, 4, 5)
            .unwrap();
        // (offset in seconds, written form), as pydantic 2.13 writes them.
        let table = [
            (3661, "2025-01-02T03:04:05+01:01"),
            (-3661, "2025-01-02T03:04:05-01:01"),
            (59, "2025-01-02T03:04:05+00:00"),
            (-59, "2025-01-02T03:04:05-00:00"),
            (-1, "2025-01-02T03:04:05-00:00"),
            (19859, "2025-01-02T03:04:05+05:30"),
            (86399, "2025-01-02T03:04:05+23:59"),
            (-86399, "2025-01-02T03:04:05-23:59"),
        ];
        for (seconds, expected) in table {
            let offset = FixedOffset::east_opt(seconds).unwrap();
            let ts = Timestamp::from_fixed(naive.and_local_timezone(offset).unwrap());
            assert_eq!(ts.to_string(), expected, "offset {seconds}");
            // What is written reads back (with the offset in whole minutes).
            let back = Timestamp::parse(expected).unwrap();
            assert_eq!(back.naive_local(), naive);
            let whole_minutes = seconds / 60 * 60;
            assert_eq!(back.offset(), FixedOffset::east_opt(whole_minutes));
        }
    }

    #[test]
    fn writes_expanded_years_chrono_can_hold() {
        let far = NaiveDate::from_ymd_opt(-12345, 6, 7)
            .unwrap()
            .and_hms_micro_opt(8, 9, 10, 11)
            .unwrap();
        let ts = Timestamp::from_fixed(
            far.and_local_timezone(FixedOffset::east_opt(-3600).unwrap())
                .unwrap(),
        );
        assert_eq!(ts.to_string(), "-012345-06-07T08:09:10.000011-01:00");
        assert!(ts.to_string().len() <= MAX_LEN);
    }
}
