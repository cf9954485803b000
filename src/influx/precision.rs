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
