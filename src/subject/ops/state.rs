//! `state.get` / `state.put`: a small JSON document per subject, replaced with compare-and-set.

use super::super::Core;
use crate::http::Failure;
use durable_stream_protocol::frame::encode_ok;
use durable_stream_protocol::state::next_version;
use durable_stream_protocol::RequestId;
use serde_json::value::RawValue;

/// The state as JSON text (`null` when never written) and its version.
pub fn get(core: &Core) -> Result<(String, u64), Failure> {
    let (state, version) = core.store.state()?;
    Ok((state.unwrap_or_else(|| "null".into()), version))
}

/// Replaces the state when `expected` matches (or is absent); returns the new version.
pub fn put(core: &mut Core, state: &str, expected: Option<u64>) -> Result<u64, Failure> {
    let version = next_version(core.meta.state_version, expected).inspect_err(|_| core.telemetry.counters.state_conflicts += 1)?;
    core.store.set_state(&mut core.meta, state, version)?;
    Ok(version)
}

pub fn get_over_websocket(core: &Core, id: Option<&RequestId>) -> Result<String, Failure> {
    let (state, version) = get(core)?;
    let state = RawValue::from_string(state).map_err(|e| worker::Error::RustError(e.to_string()))?;
    // Not through `serde_json::Value`: that would re-serialize the document (numbers beyond
    // what f64 holds exactly would change). The stored text goes out verbatim.
    let head = encode_ok(id, serde_json::json!({ "version": version }));
    let head = head.strip_suffix('}').unwrap_or(&head);
    Ok(format!("{head},\"state\":{}}}", state.get()))
}

pub fn put_over_websocket(core: &mut Core, id: Option<&RequestId>, state: &str, expected: Option<u64>) -> Result<String, Failure> {
    let version = put(core, state, expected)?;
    Ok(encode_ok(id, serde_json::json!({ "version": version })))
}
