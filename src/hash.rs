//! The one non-cryptographic hasher of the crate (rustc's Fx), for maps
//! that live inside one process and hold our own data (series by their
//! labels, records' definitions by their bytes), where SipHash's flood
//! resistance buys nothing and costs a third of a lookup.

use std::hash::{BuildHasherDefault, Hasher};

/// A fast non-cryptographic hasher (rustc's Fx): the maps it serves live
/// inside one process and hold our own data.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ rest.len() as u64);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// For maps keyed by an already well-mixed u64 (or a `Series`).
pub type Fx = BuildHasherDefault<FxHasher>;
