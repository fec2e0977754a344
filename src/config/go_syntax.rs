//! Go's value syntax as etcd's flags read it: `strconv.ParseBool`, `strconv.ParseUint` and
//! `ParseInt` with base prefixes, and `time.ParseDuration`, with the messages Go's `flag` package
//! and `time` print.
//!
//! Owns: turning one flag value's text into a number, a boolean or a duration. Never: knows
//! which flag a value belongs to.

use std::time::Duration;

/// The `flag` package's words for a number too large for its type.
const OUT_OF_RANGE: &str = "value out of range";

/// Go's `strconv.ParseBool`.
pub(super) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)` as the `flag` package reports it: base prefixes `0x`,
/// `0o`, `0b` and a leading `0` for octal, `_` between digits; no sign.
pub(super) fn parse_go_uint(s: &str) -> Result<u64, String> {
    let (base, digits) = if let Some(rest) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (16, rest)
    } else if let Some(rest) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        (8, rest)
    } else if let Some(rest) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        (2, rest)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    let prefixed = digits.len() != s.len();
    let syntax = || "parse error".to_string();
    // Underscores only as separators: after a digit (or the base prefix) and before a digit.
    if digits.ends_with('_') || digits.contains("__") || (!prefixed && digits.starts_with('_')) {
        return Err(syntax());
    }
    let cleaned: String = digits.chars().filter(|&c| c != '_').collect();
    if cleaned.is_empty() {
        return Err(syntax());
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    for c in cleaned.chars() {
        let d = c.to_digit(base).ok_or_else(syntax)?;
        match value
            .checked_mul(u64::from(base))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    if overflow {
        return Err(OUT_OF_RANGE.to_string());
    }
    Ok(value)
}

/// Go's `strconv.ParseUint(s, 0, 32)` as etcd's `Uint32Value` reports it: `strconv`'s own
/// error text, not the `flag` package's.
pub(super) fn parse_go_uint32(s: &str) -> Result<u64, String> {
    let reason = match parse_go_uint(s) {
        Ok(v) if v <= u64::from(u32::MAX) => return Ok(v),
        Ok(_) => OUT_OF_RANGE,
        Err(e) if e == OUT_OF_RANGE => OUT_OF_RANGE,
        Err(_) => "invalid syntax",
    };
    Err(format!("strconv.ParseUint: parsing {s:?}: {reason}"))
}

/// Go's `strconv.ParseInt(s, 0, 64)`, with the `flag` package's messages.
pub(super) fn parse_go_int(s: &str) -> Result<i64, String> {
    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if unsigned.starts_with(['+', '-']) {
        return Err("parse error".to_string());
    }
    let magnitude = parse_go_uint(unsigned)?;
    let limit = if negative {
        1u64 << 63
    } else {
        (1u64 << 63) - 1
    };
    if magnitude > limit {
        return Err(OUT_OF_RANGE.to_string());
    }
    Ok(if negative {
        0i64.wrapping_sub_unsigned(magnitude)
    } else {
        magnitude as i64
    })
}

/// Go's `time.ParseDuration`, returning (negative, magnitude) and Go's error messages.
pub(super) fn parse_go_duration(s: &str) -> Result<(bool, Duration), String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok((negative, Duration::ZERO));
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        let int_value: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut nanos = int_value.checked_mul(unit_nanos).ok_or_else(invalid)?;
        // Fractions beyond nanosecond precision are truncated, as Go does.
        let mut scale = unit_nanos;
        for d in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos += u128::from(d - b'0') * scale;
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(invalid)?;
        // Go's durations are signed 64-bit nanoseconds.
        if total_nanos > i64::MAX as u128 + u128::from(negative) {
            return Err(invalid());
        }
        rest = after;
    }
    let nanos = u64::try_from(total_nanos).map_err(|_| invalid())?;
    Ok((negative, Duration::from_nanos(nanos)))
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub(super) fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("0"), Ok((false, Duration::ZERO)));
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Ok((false, Duration::from_millis(3_723_500)))
        );
        assert_eq!(
            parse_go_duration("100us"),
            Ok((false, Duration::from_micros(100)))
        );
        assert_eq!(
            parse_go_duration("1\u{b5}s"),
            Ok((false, Duration::from_micros(1)))
        );
        assert_eq!(
            parse_go_duration(".5s"),
            Ok((false, Duration::from_millis(500)))
        );
        assert_eq!(parse_go_duration("-3s"), Ok((true, Duration::from_secs(3))));
        assert_eq!(
            parse_go_duration(""),
            Err("time: invalid duration \"\"".to_string())
        );
        assert_eq!(
            parse_go_duration("abc"),
            Err("time: invalid duration \"abc\"".to_string())
        );
        assert_eq!(
            parse_go_duration("1"),
            Err("time: missing unit in duration \"1\"".to_string())
        );
        assert_eq!(
            parse_go_duration("3000000h"),
            Err("time: invalid duration \"3000000h\"".to_string())
        );
    }

    #[test]
    fn go_uint32_keeps_strconv_messages() {
        assert_eq!(parse_go_uint32("0x10"), Ok(16));
        assert_eq!(parse_go_uint32("4294967295"), Ok(u64::from(u32::MAX)));
        assert_eq!(
            parse_go_uint32("abc"),
            Err("strconv.ParseUint: parsing \"abc\": invalid syntax".to_string())
        );
        assert_eq!(
            parse_go_uint32("5000000000"),
            Err("strconv.ParseUint: parsing \"5000000000\": value out of range".to_string())
        );
    }

    #[test]
    fn go_integers() {
        assert_eq!(parse_go_uint("0"), Ok(0));
        assert_eq!(parse_go_uint("0b101"), Ok(5));
        assert_eq!(parse_go_uint("0x_ff"), Ok(255));
        assert_eq!(parse_go_uint("_1"), Err("parse error".to_string()));
        assert_eq!(parse_go_uint("1__0"), Err("parse error".to_string()));
        assert_eq!(parse_go_uint("09"), Err("parse error".to_string()));
        assert_eq!(parse_go_uint("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_go_uint("18446744073709551616"),
            Err("value out of range".to_string())
        );
        assert_eq!(parse_go_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_go_int("+5"), Ok(5));
        assert_eq!(
            parse_go_int("9223372036854775808"),
            Err("value out of range".to_string())
        );
    }
}
