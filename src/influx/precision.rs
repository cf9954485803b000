/// The `precision` of a write: the unit of its timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    /// InfluxDB 2.x (`/api/v2/write`) takes ns, us, ms, s; 1.x (`/write`)
    /// takes n, ns, u, us, µ, ms, s, m, h. One table serves both; the HTTP
    /// side may refuse m and h on the 2.x route.
    pub fn parse(s: &str) -> Result<Precision, String> {
        Ok(match s {
            "ns" | "n" => Precision::Nanoseconds,
            "us" | "u" | "µ" | "µs" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            _ => return Err(format!("invalid precision {s:?}")),
        })
    }

    /// The units both InfluxDB versions take, as `consume --sink influx`
    /// writes them (`--influx-precision`): ns, us, ms, s, and 1.x's n and
    /// u. One flag serves `/write` and `/api/v2/write`, hence not m or h.
    pub fn parse_written(s: &str) -> Option<Precision> {
        Some(match s {
            "ns" | "n" => Precision::Nanoseconds,
            "us" | "u" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            _ => return None,
        })
    }

    /// How `/write` (1.x) spells it in the URL's `precision`;
    /// `/api/v2/write` takes the same for ns, us, ms and s.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Nanoseconds => "ns",
            Precision::Microseconds => "us",
            Precision::Milliseconds => "ms",
            Precision::Seconds => "s",
            Precision::Minutes => "m",
            Precision::Hours => "h",
        }
    }

    /// A millisecond timestamp in this unit: finer units saturate at the
    /// ends of i64, coarser ones round down (seconds drop the milliseconds).
    pub fn of_ms(self, ms: i64) -> i64 {
        const MS: i64 = 1_000_000;
        let nanos = self.nanos();
        if nanos < MS {
            ms.saturating_mul(MS / nanos)
        } else {
            ms.div_euclid(nanos / MS)
        }
    }

    fn nanos(self) -> i64 {
        match self {
            Precision::Nanoseconds => 1,
            Precision::Microseconds => 1_000,
            Precision::Milliseconds => 1_000_000,
            Precision::Seconds => 1_000_000_000,
            Precision::Minutes => 60_000_000_000,
            Precision::Hours => 3_600_000_000_000,
        }
    }
}

/// `ts` in nanoseconds since the epoch; an error when that leaves i64
/// (InfluxDB's range, about 1677-09-21 to 2262-04-11).
pub fn timestamp_ns(ts: i64, precision: Precision) -> Result<i64, String> {
    ts.checked_mul(precision.nanos())
        .ok_or_else(|| format!("timestamp {ts} out of range for precision {precision:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sinks_precisions() {
        let all = ["ns", "n", "us", "u", "ms", "s"];
        let parsed: Vec<&str> = all
            .iter()
            .filter_map(|s| Precision::parse_written(s))
            .map(Precision::as_str)
            .collect();
        assert_eq!(parsed, ["ns", "ns", "us", "us", "ms", "s"]);
        for other in ["m", "h", "µ", "MS", ""] {
            assert_eq!(Precision::parse_written(other), None, "{other:?}");
        }
        assert_eq!(Precision::Nanoseconds.of_ms(1_500), 1_500_000_000);
        assert_eq!(Precision::Microseconds.of_ms(-2), -2_000);
        assert_eq!(Precision::Milliseconds.of_ms(1_500), 1_500);
        assert_eq!(Precision::Seconds.of_ms(1_999), 1);
        assert_eq!(Precision::Seconds.of_ms(-1), -1);
        assert_eq!(Precision::Minutes.of_ms(120_000), 2);
        assert_eq!(Precision::Nanoseconds.of_ms(i64::MAX), i64::MAX);
        assert_eq!(Precision::Microseconds.of_ms(i64::MIN), i64::MIN);
    }
}
