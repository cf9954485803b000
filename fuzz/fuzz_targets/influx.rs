//! InfluxDB line protocol: the body as is. The checks live in
//! `metricstream::fuzzing`, shared with tests/fuzz_corpus.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| metricstream::fuzzing::check_influx(data));
