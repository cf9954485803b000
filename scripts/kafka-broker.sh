#!/usr/bin/env bash
# The Kafka-API broker the Kafka tests and benchmarks run against: tansu
# (a Kafka-compatible broker written in Rust, installed with cargo because
# no package registry here carries Apache Kafka).
#
#   scripts/kafka-broker.sh install          install tansu once (cached), print its path
#   scripts/kafka-broker.sh path             print the path (exit 1 if not installed)
#   scripts/kafka-broker.sh start PORT [DIR] run a broker on 127.0.0.1:PORT with its
#                                            sqlite storage in DIR (default: a temp dir)
#   scripts/kafka-broker.sh topic PORT NAME [PARTITIONS]   create a topic (default 4)
#
# The tests start their own brokers (tests/common/broker.rs) from the same
# binary: METRICSTREAM_TANSU, else ~/.cache/metricstream/tansu-0.6.0/bin/tansu.
# Installing takes about 10 minutes on 2 cores; it happens once per machine.
set -euo pipefail

TANSU_VERSION=0.6.0
CACHE="${METRICSTREAM_CACHE:-$HOME/.cache/metricstream}"
ROOT="$CACHE/tansu-$TANSU_VERSION"
BIN="${METRICSTREAM_TANSU:-$ROOT/bin/tansu}"

install() {
  if [ -x "$BIN" ]; then
    echo "$BIN"
    return
  fi
  if ! command -v cargo >/dev/null; then
    echo "cargo is needed to install tansu (the test broker)" >&2
    exit 1
  fi
  mkdir -p "$CACHE"
  # One install at a time (parallel CI jobs, a second terminal).
  exec 9>"$CACHE/tansu-install.lock"
  flock 9
  if [ ! -x "$BIN" ]; then
    echo "installing tansu $TANSU_VERSION into $ROOT (once; about 10 minutes)" >&2
    cargo install tansu --version "$TANSU_VERSION" --locked \
      --features dynostore,libsql --root "$ROOT" >&2
  fi
  echo "$BIN"
}

case "${1:-}" in
  install)
    install
    ;;
  path)
    [ -x "$BIN" ] || { echo "tansu is not installed: $0 install" >&2; exit 1; }
    echo "$BIN"
    ;;
  start)
    port="${2:?usage: $0 start PORT [DIR]}"
    dir="${3:-$(mktemp -d)}"
    mkdir -p "$dir"
    cd "$dir"
    echo "tansu on 127.0.0.1:$port, storage in $dir" >&2
    exec "$BIN" broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "sqlite://tansu.db"
    ;;
  topic)
    port="${2:?usage: $0 topic PORT NAME [PARTITIONS]}"
    name="${3:?usage: $0 topic PORT NAME [PARTITIONS]}"
    exec "$BIN" topic create "$name" --partitions "${4:-4}" --broker "tcp://127.0.0.1:$port"
    ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
