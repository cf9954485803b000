//! A batch's tenant on the wire: every batch holds one tenant's samples
//! (the batcher keeps an open batch per lane and tenant), and with
//! `--tenant-header NAME` its request carries `NAME: <tenant>` (no header
//! for samples without a tenant; a fixed `--header` of the same name then
//! stays as it is). Both places a batch is encoded (the batcher's cut, the
//! lane's halves of a refused batch) go through [`encode`].

use hyper::header::HeaderValue;

use super::context::DeliveryContext;
use crate::sink::store::{Body, EncodeError};
use crate::sink::Sample;

/// The store's request body for `samples`, with the tenant's header. A
/// batch of two tenants cannot be sent under one header: an error, which
/// the lane splits as any encoding error, down to batches of one tenant.
pub fn encode(context: &DeliveryContext, samples: &[Sample]) -> Result<Body, EncodeError> {
    let tenant = samples.first().and_then(Sample::tenant);
    if let Some(other) = samples.iter().find(|s| s.tenant() != tenant) {
        let why = format!(
            "a batch mixes tenants {} and {}",
            tenant.unwrap_or("(none)"),
            other.tenant().unwrap_or("(none)")
        );
        // The batcher never cuts one: a bug, said loudly, and still never
        // sent under the wrong tenant.
        tracing::error!("{why}");
        return Err(EncodeError(why));
    }
    let mut body = context.sink.encode(samples)?;
    if let (Some(name), Some(tenant)) = (&context.tenant_header, tenant) {
        // Tenants `serve` stored are header-safe; a record from another
        // writer may hold anything.
        let value = HeaderValue::from_str(tenant).map_err(|_| {
            EncodeError(format!(
                "tenant {tenant:?} cannot be sent as a {name} header"
            ))
        })?;
        body.tenant = Some((name.clone(), value));
    }
    Ok(body)
}
