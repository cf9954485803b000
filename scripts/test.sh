#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting, lints, then every
# unit, property and integration test (the integration tests start the real
# server binary themselves on loopback ports with temporary data dirs).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "cargo is required: install a Rust toolchain (rustup) first" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
