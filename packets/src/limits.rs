//! Fixed limits on everything a decoder reads from outside. Every dimension and length in
//! a packet is checked against these before memory is allocated for it.

/// Largest packet accepted, in bytes (whole file).
pub const MAX_PACKET_BYTES: usize = 1 << 20;
/// Largest encoded header (provenance), in bytes.
pub const MAX_HEADER_BYTES: usize = 4 << 10;
/// Largest decompressed body, in bytes.
pub const MAX_BODY_RAW_BYTES: usize = 1 << 20;
/// Largest number of layers in a policy.
pub const MAX_LAYERS: usize = 16;
/// Largest input or output width of one layer (and the observation width).
pub const MAX_DIM: usize = 1024;
/// Largest total number of weights across all layers of a policy.
pub const MAX_TOTAL_WEIGHTS: usize = 512 * 1024;
/// Largest LoRA rank.
pub const MAX_RANK: usize = 64;
/// Largest length of any provenance string.
pub const MAX_STRING_BYTES: usize = 1024;
