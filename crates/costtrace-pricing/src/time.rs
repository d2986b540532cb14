//! The little calendar arithmetic dated prices need (UTC only).

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 of the UTC day containing `micros`.
pub(crate) fn day_of(micros: i64) -> i64 {
    micros.div_euclid(MICROS_PER_DAY)
}

/// Microseconds since midnight UTC.
pub(crate) fn micros_of_day(micros: i64) -> i64 {
    micros.rem_euclid(MICROS_PER_DAY)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str, what: &str) -> Result<i64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {s:?} is not a number"));
    }
    s.parse()
        .map_err(|_| format!("{what} {s:?} is not a number"))
}

/// Parses `YYYY-MM-DD` to days since the Unix epoch.
pub(crate) fn parse_date(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a date; use YYYY-MM-DD");
    let mut it = s.trim().split('-');
    let (Some(y), Some(m), Some(d), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(bad());
    };
    let (y, m, d) = (num(y, "year")?, num(m, "month")?, num(d, "day")?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok(days_from_civil(y, m, d))
}

/// Parses `HH:MM[:SS]` with an optional `Z` or `+00:00` to microseconds
/// since midnight UTC.
pub(crate) fn parse_time_of_day(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix('Z')
        .or_else(|| t.strip_suffix("+00:00"))
        .unwrap_or(t);
    let parts: Vec<&str> = t.split(':').collect();
    let bad = || format!("{s:?} is not a UTC time of day; use HH:MM:SSZ");
    if !(2..=3).contains(&parts.len()) {
        return Err(bad());
    }
    let h = num(parts[0], "hour")?;
    let m = num(parts[1], "minute")?;
    let sec = match parts.get(2) {
        Some(p) => num(p, "second")?,
        None => 0,
    };
    if h > 24 || m > 59 || sec > 59 || (h == 24 && (m, sec) != (0, 0)) {
        return Err(bad());
    }
    Ok(((h * 60 + m) * 60 + sec) * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(parse_date("2000-03-01"), Ok(11_017));
        assert_eq!(parse_date("2025-06-10"), Ok(20_249));
        assert!(parse_date("2025-13-01").is_err());
        assert!(parse_date("June").is_err());
        assert_eq!(day_of(-1), -1);
    }

    #[test]
    fn times_of_day() {
        assert_eq!(parse_time_of_day("00:30:00Z"), Ok(30 * 60 * 1_000_000));
        assert_eq!(parse_time_of_day("16:30"), Ok(59_400 * 1_000_000));
        assert!(parse_time_of_day("25:00").is_err());
    }
}
