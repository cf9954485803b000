#!/usr/bin/env bash
# Sourced by scripts/test.sh and scripts/reliability.sh: installs, once, what
# the tests need and exports where it is. On a fresh machine that is a C
# toolchain, pkg-config, OpenSSL and zlib headers (librdkafka is built from
# source by the rdkafka crate), the tansu broker (scripts/kafka-broker.sh,
# ~10 minutes, cached in ~/.cache/metricstream) and Python's confluent-kafka
# in a venv there (the independent Kafka reader) with protobuf and cramjam
# (a hand-made remote_write client) and grpcio-tools (whose protoc compiles
# proto/record.proto for the independent reader of stored records), and Debian's prometheus (2.42) and
# prometheus-node-exporter (a real remote_write sender and store), Debian's
# influxdb (1.6: a line-protocol store and benchmark peer), and in the venv
# influxdb-client and the OpenTelemetry SDK with its OTLP/HTTP exporter
# (independent senders), strace (the durable-ack ordering test), and
# Debian's chromium and chromium-driver with selenium in the venv (the
# status page's browser test).
# Everything already present is skipped.

if ! command -v cargo >/dev/null; then
  echo "cargo is required: install a Rust toolchain (rustup) first" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

CACHE="${METRICSTREAM_CACHE:-$HOME/.cache/metricstream}"
mkdir -p "$CACHE"

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "missing system packages ($*); install them with your package manager" >&2
    exit 1
  fi
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  echo "installing system packages: $*" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

# Build dependencies of librdkafka (rdkafka-sys): compiler, make, pkg-config,
# OpenSSL (TLS/SASL) and zlib headers.
missing=()
command -v cc >/dev/null || missing+=(gcc)
command -v c++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v perl >/dev/null || missing+=(perl)
command -v python3 >/dev/null || missing+=(python3 python3-venv)
# The line-protocol tests make 1.x-style writes with curl, as users do.
command -v curl >/dev/null || missing+=(curl)
# The durable-ack test reads the order of the writer's syncs and the
# answers' writes in a system call trace (tests/durable_ack_order.rs).
command -v strace >/dev/null || missing+=(strace)
if command -v dpkg >/dev/null; then
  dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
  dpkg -s zlib1g-dev >/dev/null 2>&1 || missing+=(zlib1g-dev)
fi
# The status page's browser test (tests/status_page.rs) drives Debian's
# Chromium through its chromedriver.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
fi

# Prometheus 2.42 (a real remote_write sender, and a store) and the node
# exporter it scrapes, for the remote_write tests. Their postinst scripts
# start the system services (Prometheus on :9090, the exporter on :9100)
# wherever invoke-rc.d or systemd lets them; the tests start their own
# instances on free loopback ports, so a policy-rc.d that denies every start
# is put in place for the install (unless the machine has one) to leave no
# daemon running in CI.
prom_missing=()
command -v prometheus >/dev/null || prom_missing+=(prometheus)
command -v prometheus-node-exporter >/dev/null || prom_missing+=(prometheus-node-exporter)
# InfluxDB 1.6 (Debian's influxdb): the line-protocol store and benchmark
# peer. Its service is kept from starting the same way.
command -v influxd >/dev/null || prom_missing+=(influxdb)
if [ "${#prom_missing[@]}" -gt 0 ]; then
  if [ -e /usr/sbin/policy-rc.d ]; then
    apt_install "${prom_missing[@]}"
  else
    no_start=""
    [ "$(id -u)" = 0 ] || no_start="sudo -n"
    printf '#!/bin/sh\nexit 101\n' | $no_start tee /usr/sbin/policy-rc.d >/dev/null
    $no_start chmod 755 /usr/sbin/policy-rc.d
    rc=0
    (apt_install "${prom_missing[@]}") || rc=$?
    $no_start rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || exit "$rc"
  fi
fi
METRICSTREAM_STRACE="$(command -v strace)"
export METRICSTREAM_STRACE
METRICSTREAM_PROMETHEUS="$(command -v prometheus)"
METRICSTREAM_NODE_EXPORTER="$(command -v prometheus-node-exporter)"
METRICSTREAM_INFLUXD="$(command -v influxd)"
export METRICSTREAM_PROMETHEUS METRICSTREAM_NODE_EXPORTER METRICSTREAM_INFLUXD
# The tests are written against 2.42 (Debian 12's): its remote_write is 1.0
# only, and its metric names and config keys are the ones they read.
if ! "$METRICSTREAM_PROMETHEUS" --version 2>&1 | grep -q '^prometheus, version 2\.42\.'; then
  echo "the remote_write tests need Prometheus 2.42.x (Debian 12's prometheus package); found:" >&2
  "$METRICSTREAM_PROMETHEUS" --version >&2 || true
  exit 1
fi

# The Kafka-API broker the Kafka tests run against.
METRICSTREAM_TANSU="$(./scripts/kafka-broker.sh install)"
export METRICSTREAM_TANSU

# The independent Kafka client the tests read Kafka back with, and what the
# independent remote_write 2.0 client (tests/clients/rw2_client.py) builds
# its requests with: protobuf (messages described at run time, no protoc)
# and cramjam (snappy block format).
VENV="$CACHE/venv"
if [ ! -x "$VENV/bin/python" ]; then
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    apt_install python3-venv
    rm -rf "$VENV"
    python3 -m venv "$VENV"
  fi
fi
py_missing=()
"$VENV/bin/python" -c 'import confluent_kafka' >/dev/null 2>&1 ||
  py_missing+=('confluent-kafka>=2.3,<3')
"$VENV/bin/python" -c 'import google.protobuf.descriptor_pb2, google.protobuf.message_factory' \
  >/dev/null 2>&1 || py_missing+=('protobuf>=4.25,<8')
# The independent reader of stored records (tests/clients/record_reader.py)
# compiles proto/record.proto with grpcio-tools' protoc.
"$VENV/bin/python" -c 'import grpc_tools.protoc' >/dev/null 2>&1 ||
  py_missing+=('grpcio-tools>=1.60,<2')
"$VENV/bin/python" -c 'import cramjam' >/dev/null 2>&1 || py_missing+=('cramjam>=2.8,<3')
# Independent senders of line protocol and OTLP: InfluxDB's Python client
# and the OpenTelemetry SDK with its OTLP/HTTP exporter.
"$VENV/bin/python" -c 'import influxdb_client' >/dev/null 2>&1 ||
  py_missing+=('influxdb-client>=1.40,<2')
"$VENV/bin/python" -c 'import opentelemetry.sdk.metrics, opentelemetry.exporter.otlp.proto.http.metric_exporter' \
  >/dev/null 2>&1 || py_missing+=('opentelemetry-sdk>=1.25,<2' 'opentelemetry-exporter-otlp-proto-http>=1.25,<2')
# Selenium drives Chromium for the status page's browser test.
"$VENV/bin/python" -c 'import selenium' >/dev/null 2>&1 || py_missing+=('selenium>=4.20,<5')
if [ "${#py_missing[@]}" -gt 0 ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${py_missing[@]}" >&2
fi
export METRICSTREAM_PYTHON="$VENV/bin/python"
