//! Log recovery on a partition directory built from the input.
//! The checks live in `metricstream::fuzzing`, shared with tests/fuzz_corpus.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| metricstream::fuzzing::check_recovery(data));
