//! Kafka's default partitioner: murmur2 of the key, made positive, modulo the
//! partition count. Using the very same function on both backends means a
//! client lands in the same partition number whether the queue is our log or
//! Kafka (and the same one a Java producer would pick).

/// Kafka's `Utils.murmur2` (a 32-bit MurmurHash2 with Kafka's seed).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The key of one series under `--partition-by series`: the name and the
/// labels, sorted by label name, in Prometheus' notation without escaping
/// (`http_requests_total{code="200",job="api"}`). It is the partition key, so
/// all samples of a series go to one partition, in order.
pub fn series_key<'a>(name: &str, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut key = String::with_capacity(name.len() + 64);
    key.push_str(name);
    key.push('{');
    for (i, (k, v)) in labels.into_iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        key.push_str(k);
        key.push_str("=\"");
        key.push_str(v);
        key.push('"');
    }
    key.push('}');
    key
}

/// The partition Kafka's Java client picks for a keyed record.
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's own `UtilsTest.testMurmur2`.
    #[test]
    fn matches_kafka_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "key {:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn partition_is_positive_modulo() {
        // murmur2("21") is negative; the sign bit is masked, not abs()'d.
        let expected = ((-973_932_308i32 & 0x7fff_ffff) as u32) % 4;
        assert_eq!(partition_for(b"21", 4), expected);
        for n in 1..16 {
            assert!(partition_for(b"load_client_7", n) < n);
        }
    }
}
