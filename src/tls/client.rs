//! Filled in by the client-TLS work: connectors for the sinks and bench.
