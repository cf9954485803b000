//! InfluxDB line protocol parsing and validation over a Telegraf-like body
//! (~1 MB of cpu/mem/disk/net lines, 5-8 tags, 3-10 fields, ns timestamps).

// The server's allocator (src/main.rs): each line allocates its tag and
// field vectors, so the allocator is part of the cost measured.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use metricstream::influx;

pub fn telegraf_body(target: usize) -> String {
    let mut out = String::with_capacity(target + 1024);
    let mut ts: i64 = 1_700_000_000_000_000_000;
    let mut i = 0u64;
    while out.len() < target {
        let host = format!("web{:02}.eu-west-1.example.com", i % 40);
        let common = format!(
            ",host={host},region=eu-west-1,dc=dub2,rack=r{},env=prod",
            i % 12
        );
        let line = match i % 4 {
            0 => format!(
                "cpu{common},cpu=cpu{} usage_user={:.6},usage_system={:.6},usage_idle={:.6},usage_iowait=0.0251,usage_irq=0,usage_softirq=0.1003,usage_steal=0,usage_guest=0 {ts}\n",
                i % 16, 10.5 + (i % 7) as f64, 3.25, 85.125
            ),
            1 => format!(
                "mem{common} total=16777216000i,available={}i,used=8123456789i,free=1234567890i,cached=4567890123i,buffered=123456789i,used_percent=48.42 {ts}\n",
                8_000_000_000u64 + i
            ),
            2 => format!(
                "disk{common},device=nvme0n1p1,fstype=ext4,mode=rw,path=/var/lib/data total=1000204886016i,free={}i,used=400081954406i,used_percent=40.0,inodes_total=61054976i,inodes_free=60000000i,inodes_used=1054976i {ts}\n",
                600_000_000_000u64 + i
            ),
            _ => format!(
                "net{common},interface=eth0 bytes_sent={}u,bytes_recv=98765432109u,packets_sent=1234567u,packets_recv=7654321u,err_in=0u,err_out=0u,drop_in=3u,drop_out=0u {ts}\n",
                123_456_789_012u64 + i
            ),
        };
        out.push_str(&line);
        i += 1;
        ts += 10_000_000;
    }
    out
}

fn parse(c: &mut Criterion) {
    let body = telegraf_body(1 << 20);
    let mut g = c.benchmark_group("influx_line_protocol");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("metricstream_parse_1MB", |b| {
        b.iter(|| {
            let parsed = influx::parse(body.as_bytes());
            assert!(parsed.errors().next().is_none());
            parsed.lines.len()
        })
    });
    // InfluxDB 3's parser on the same body; it takes &str, so the UTF-8
    // check ours does is counted for it too.
    g.bench_function("influxdb_line_protocol_crate_1MB", |b| {
        b.iter(|| {
            let text = std::str::from_utf8(body.as_bytes()).expect("utf-8");
            let mut n = 0;
            for line in influxdb_line_protocol::parse_lines(text) {
                line.expect("valid");
                n += 1;
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
