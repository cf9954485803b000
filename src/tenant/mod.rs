//! Tenants: the `X-Scope-OrgID` of multi-tenant stores (Mimir, Cortex,
//! Thanos receive), carried from the request that brought the data to the
//! store `consume` delivers it into.
//!
//! - [`id`]: what a tenant id may be (Mimir's own rule) and the header a
//!   request names it with;
//! - [`rule`]: which client may use which tenant (`--tenant NAME=RULE`),
//!   and the admission table that turns a client, its rule and the header
//!   into the request's tenant or a refusal;
//! - [`counters`]: the per-tenant counters of `/metrics` and `/stats`,
//!   their tenant label bounded.
//!
//! The tenant is stored with each record (a record holds one request, so
//! one tenant): version 2's `Body.tenant`, version 1's `"tenant"` key.

pub mod counters;
pub mod id;
pub mod rule;

pub use counters::{TenantCounters, TenantStats};
pub use id::{requested, validate, HEADER, MAX_TENANT_ID};
pub use rule::{Rule, Rules};

/// Why a request's tenant is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantError {
    /// 400: the header is not a tenant id (or names several).
    Invalid(String),
    /// 403: this client may not use the tenant it names.
    Forbidden(String),
}
