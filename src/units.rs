//! Units in host files: memory sizes ("16GiB") and durations ("30s", "1h").

use std::time::Duration;

/// Parses "16GiB", "512MiB", "2G" (binary units; MiB granularity) into MiB.
pub fn parse_mib(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{text}` is not a size"))?;
    let factor = match unit.trim() {
        "M" | "MiB" | "MB" => 1,
        "G" | "GiB" | "GB" => 1024,
        "T" | "TiB" | "TB" => 1024 * 1024,
        "" => {
            return Err(format!(
                "`{text}` has no unit: write \"{n}MiB\" or \"{n}GiB\""
            ));
        }
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{text}`: use MiB, GiB or TiB"
            ));
        }
    };
    if n == 0 {
        return Err(format!("`{text}` is zero"));
    }
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses a human duration ("30s", "5m", "1h 30m") with humantime.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration ({e})"))?;
    if d.is_zero() {
        return Err(format!("`{text}` is zero: give a positive duration"));
    }
    Ok(d)
}

/// Formats MiB for tables: "1.5 GiB", "512 MiB".
pub fn format_mib(mib: u64) -> String {
    if mib >= 1024 && mib.is_multiple_of(1024) {
        format!("{} GiB", mib / 1024)
    } else if mib >= 1024 {
        format!("{:.1} GiB", mib as f64 / 1024.0)
    } else {
        format!("{mib} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_mib("16GiB"), Ok(16384));
        assert_eq!(parse_mib("512MiB"), Ok(512));
        assert_eq!(parse_mib("2G"), Ok(2048));
        assert!(parse_mib("16").unwrap_err().contains("no unit"));
        assert!(
            parse_mib("16 parsecs")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(parse_mib("lots").is_err());
        assert!(parse_mib("0GiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_mib(2048), "2 GiB");
        assert_eq!(format_mib(1536), "1.5 GiB");
        assert_eq!(format_mib(64), "64 MiB");
    }
}
