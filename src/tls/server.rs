//! Filled in by the server-TLS work: the acceptor, certificate reload, client certificates.
