//! Any byte string must decode to a packet or a typed error; a packet that decodes must
//! load and act without panicking. Run: `cd packets && cargo fuzz run decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plasma_packets::{EdgeRuntime, Kernel, Packet, Verifier, decode_unverified};

fuzz_target!(|data: &[u8]| {
    let _ = decode_unverified(data);
    let verifier = Verifier::unsigned_only();
    if let Ok(vp) = Packet::decode(data, &verifier)
        && let Ok(rt) = EdgeRuntime::from_verified(vp, verifier, Kernel::Merged)
    {
        {
            let dim = rt.policy().obs_dim();
            let mut actor = rt.actor();
            let _ = actor.act(&vec![0.25; dim]);
        }
    }
});
