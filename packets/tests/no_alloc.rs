//! `act` does not allocate: counted with a global allocator wrapper.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use plasma_packets::{EdgeRuntime, Kernel, Verifier};

mod common;

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn act_allocates_nothing_after_the_first_call() {
    let pair = common::default_pair(1);
    for kernel in [Kernel::Merged, Kernel::Int8] {
        let rt = EdgeRuntime::load(
            &pair.base,
            Verifier::pinned(common::signer().public_key()),
            kernel,
        )
        .unwrap();
        rt.apply_adapter(&pair.adapter).unwrap();
        let mut actor = rt.actor();
        let obs: Vec<[f32; 4]> = (0..100)
            .map(|i| [i as f32 * 0.01, -0.2, 0.3, 0.05 * i as f32])
            .collect();
        actor.act(&obs[0]).unwrap();
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        let mut n = 0u32;
        for o in &obs {
            n += actor.act(o).unwrap().as_discrete().unwrap();
        }
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        assert_eq!(
            after - before,
            0,
            "{kernel:?}: {} allocations in 100 calls (sum {n})",
            after - before
        );
    }
}
