//! Counting the live heap, for the benchmark's bytes-per-task figure.
//!
//! `main.rs` installs [`CountingAllocator`] around mimalloc as the global allocator.
//! Counting is off until [`start`] is called, and costs one relaxed load per allocation
//! while off. Only allocations of this program are seen: a plugin library allocates
//! through its own allocator.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

static INSTALLED: AtomicBool = AtomicBool::new(false);
static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);

/// A global allocator that counts live bytes while counting is on, around another one.
#[derive(Debug)]
pub(crate) struct CountingAllocator<A>(A);

impl<A> CountingAllocator<A> {
    /// Wraps an allocator.
    pub(crate) const fn new(inner: A) -> Self {
        CountingAllocator(inner)
    }
}

#[inline]
fn record(delta: i64) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

fn size(layout: Layout) -> i64 {
    i64::try_from(layout.size()).unwrap_or(i64::MAX)
}

// SAFETY: every method forwards to the wrapped allocator with the caller's arguments
// unchanged, so the wrapped allocator's guarantees hold; the counting touches only atomics.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        INSTALLED.store(true, Ordering::Relaxed);
        // SAFETY: forwarded as received (see the impl's comment).
        let ptr = unsafe { self.0.alloc(layout) };
        if !ptr.is_null() {
            record(size(layout));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(-size(layout));
        // SAFETY: forwarded as received.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        INSTALLED.store(true, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        let ptr = unsafe { self.0.alloc_zeroed(layout) };
        if !ptr.is_null() {
            record(size(layout));
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as received.
        let new = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            record(i64::try_from(new_size).unwrap_or(i64::MAX) - size(layout));
        }
        new
    }
}

/// Starts counting (from zero). Returns `false` when no [`CountingAllocator`] is
/// installed, and nothing will be counted.
pub(crate) fn start() -> bool {
    LIVE.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    INSTALLED.load(Ordering::Relaxed)
}

/// Stops counting; returns the net bytes allocated since [`start`], if counted.
pub(crate) fn stop() -> Option<i64> {
    COUNTING.store(false, Ordering::Relaxed);
    INSTALLED
        .load(Ordering::Relaxed)
        .then(|| LIVE.load(Ordering::Relaxed))
}

/// Asks mimalloc to return the pages it holds free to the system: allocators keep freed
/// pages for reuse, so without this a resident-set reading counts memory the program no
/// longer uses.
pub(crate) fn release() {
    // SAFETY: `mi_collect` takes no pointers and may be called at any time from any
    // thread; it only walks mimalloc's own free lists.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
