#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting, lints, then every
# unit, property and integration test (the integration tests start the real
# server binary themselves on loopback ports with temporary data dirs; the
# Kafka tests start their own tansu brokers). scripts/deps.sh installs what
# they need first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings
cargo test --locked --workspace --all-features
