//! What the relay serves: channels and keys turned into the router's key specs,
//! tokens held in memory so the hot path reads no database row.

pub mod keys;
pub mod sync;
pub mod tokens;
