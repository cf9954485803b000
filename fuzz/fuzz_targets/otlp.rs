//! OTLP/HTTP metrics: JSON-or-protobuf and gzip flags in the first byte,
//! then the body. The checks live in `metricstream::fuzzing`, shared with
//! tests/fuzz_corpus.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| metricstream::fuzzing::check_otlp(data));
