//! Line-protocol bodies, shaped like Telegraf's `cpu` input: one line per
//! (host, cpu) with three float fields by default (1 to 3), so `samples`
//! fields make `samples / 3` lines (the last one shorter if it does not
//! divide). Each
//! client writes its own hosts, with nanosecond timestamps that only go up,
//! so every point is new to a store (InfluxDB overwrites a point with the
//! same series and time).

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context;
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const FIELDS: [&str; 3] = ["usage_user", "usage_system", "usage_idle"];

/// One client's lines and the state that keeps its timestamps going up.
#[derive(Debug)]
pub struct InfluxBodies {
    client: u32,
    samples: usize,
    fields: usize,
    last_ns: i64,
    rng: SmallRng,
    text: String,
    gzip: bool,
}

impl InfluxBodies {
    /// `samples` fields per request, `fields` per line (1 to 3), over
    /// client `client`'s own series.
    pub fn new(client: u32, samples: usize, fields: usize, gzip: bool) -> Self {
        Self {
            client,
            samples,
            fields: fields.clamp(1, FIELDS.len()),
            last_ns: i64::MIN,
            rng: SmallRng::from_rng(&mut rand::rng()),
            text: String::new(),
            gzip,
        }
    }

    /// The next body, stamped at `max(now_ns, last + 1)`.
    pub fn next_body(&mut self, now_ns: i64) -> anyhow::Result<Bytes> {
        let ts = now_ns.max(self.last_ns.saturating_add(1));
        self.last_ns = ts;
        self.text.clear();
        let mut left = self.samples;
        let mut line = 0usize;
        while left > 0 {
            let host = line / 8;
            let cpu = line % 8;
            let _ = write!(
                self.text,
                "cpu,host=load-{}-{host},cpu=cpu{cpu},region=eu-west ",
                self.client
            );
            for (i, field) in FIELDS.iter().take(left.min(self.fields)).enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let v: f64 = self.rng.random_range(0.0..100.0);
                let _ = write!(self.text, "{sep}{field}={v:.3}");
            }
            let _ = writeln!(self.text, " {ts}");
            left = left.saturating_sub(self.fields);
            line += 1;
        }
        if !self.gzip {
            return Ok(Bytes::from(self.text.clone().into_bytes()));
        }
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(self.text.as_bytes())
            .context("gzip line protocol")?;
        Ok(Bytes::from(e.finish().context("gzip line protocol")?))
    }
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_the_fields_asked_with_rising_timestamps() {
        let mut b = InfluxBodies::new(3, 10, 3, false);
        let one = b.next_body(5).unwrap();
        let two = b.next_body(5).unwrap();
        for (body, ts) in [(&one, "5"), (&two, "6")] {
            let text = std::str::from_utf8(body).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 4, "{text}");
            let fields: usize = lines
                .iter()
                .map(|l| l.split(' ').nth(1).unwrap().split(',').count())
                .sum();
            assert_eq!(fields, 10, "{text}");
            assert!(
                lines.iter().all(|l| l.ends_with(&format!(" {ts}"))),
                "{text}"
            );
            assert!(
                lines[0].starts_with("cpu,host=load-3-0,cpu=cpu0,"),
                "{text}"
            );
        }
    }

    #[test]
    fn one_field_per_line_makes_a_line_per_sample() {
        let mut b = InfluxBodies::new(1, 10, 1, false);
        let body = b.next_body(5).unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        assert_eq!(text.lines().count(), 10, "{text}");
        assert!(text.lines().all(|l| l.contains(" usage_user=")), "{text}");
    }

    #[test]
    fn gzip_bodies_inflate_to_the_same_lines() {
        use std::io::Read as _;
        let mut b = InfluxBodies::new(0, 6, 3, true);
        let body = b.next_body(1).unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.lines().count(), 2);
    }
}
