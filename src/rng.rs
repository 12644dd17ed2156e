//! The engine's randomness, fork-safe.
//!
//! Tokens and handles come from a thread-local ChaCha12 ([`StdRng`]) seeded
//! from the operating system and reseeded from it after 64 KiB of output
//! (as rand's `ThreadRng` does). Unlike `ThreadRng` (rand 0.9), it is also
//! reseeded in a forked child before the child's first draw: a pre-forking
//! server's parent and children never draw the same tokens. Secret keys do
//! not go through it: they come straight from the operating system.
//!
//! # Implementation
//!
//! Each thread's generator remembers the *fork epoch* it was seeded in; a
//! draw whose epoch differs reseeds first. On Unix the epoch is a counter
//! that a `pthread_atfork` child handler bumps: the handler runs in the
//! child, in the forking thread, before `fork` returns, so the child's first
//! draw sees the new epoch and the parent's stream is never repeated. A
//! draw pays one relaxed atomic load for this.
//!
//! Why not compare `std::process::id()` per draw, which needs no `unsafe`:
//! on glibc (since 2.25) `getpid` is a real system call, ~106 ns here
//! against ~15 ns for the whole 32-byte ChaCha draw, and a `create` draws
//! twice (token and handle). Measured on the 2-vCPU CI machine, median CPU
//! time per 32-byte draw: `ThreadRng` 15.4 ns, this generator 15.2 ns, the
//! same with a `getpid` check 121 ns, the OS source 245 ns. In
//! `cargo bench --bench sessions -- 'create/.*/10k'`, three interleaved
//! runs each, `create/sesame` over `create/tower_sessions` of the same run:
//! 1.18x with `ThreadRng`, 1.20x with this generator, 1.97x with the
//! `getpid` check. The process id remains the fallback if the handler
//! cannot be registered (`ENOMEM`).
//!
//! What the handler does not see: a child made by a raw `clone`/`vfork`
//! system call rather than libc's `fork` (such a child must only `exec`,
//! and draws nothing). On platforms without `fork` the epoch is constant.

use std::cell::RefCell;

use rand::rngs::{OsRng, StdRng};
use rand::{RngCore as _, SeedableRng as _, TryRngCore as _};

/// Bytes a thread's generator yields before it reseeds from the operating
/// system: 64 KiB, rand's `ThreadRng` threshold (2,048 tokens).
const RESEED_AFTER: u64 = 64 * 1024;

struct Local {
    rng: StdRng,
    /// The fork epoch the generator was seeded in.
    epoch: u64,
    /// Bytes left before the next reseed.
    left: u64,
}

impl Local {
    fn seed(epoch: u64) -> Self {
        Self {
            rng: StdRng::from_seed(os_seed()),
            epoch,
            left: RESEED_AFTER,
        }
    }
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// Fills `dest` from this thread's generator, reseeding it first if the
/// process forked since it was seeded or it has run its 64 KiB.
///
/// # Panics
///
/// If the operating system's random source fails when a (re)seed is due
/// (as `rand::rng()` does): there is no safe token to return then.
pub(crate) fn fill(dest: &mut [u8]) {
    // Read the epoch before touching the generator: its first read
    // registers the fork handler, so no fork can slip between seeding and
    // registration.
    let epoch = fork::epoch();
    let len = dest.len() as u64;
    LOCAL.with_borrow_mut(|slot| {
        let local = match slot {
            Some(l) if l.epoch == epoch && l.left >= len => l,
            _ => slot.insert(Local::seed(epoch)),
        };
        local.left = local.left.saturating_sub(len);
        local.rng.fill_bytes(dest);
    });
}

/// A random `u64` from this thread's generator (see [`fill`]).
pub(crate) fn next_u64() -> u64 {
    let mut b = [0u8; 8];
    fill(&mut b);
    u64::from_le_bytes(b)
}

/// Fills `dest` straight from the operating system's random source.
///
/// # Panics
///
/// If that source fails (see [`fill`]).
pub(crate) fn os_fill(dest: &mut [u8]) {
    if let Err(e) = OsRng.try_fill_bytes(dest) {
        panic!("the operating system's random source failed: {e}");
    }
}

fn os_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    os_fill(&mut seed);
    seed
}

#[cfg(unix)]
#[allow(unsafe_code)]
mod fork {
    //! The fork epoch: a counter bumped in each forked child.

    use std::sync::Once;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// Forks this process's memory has been through (as seen from the
    /// current process: the child handler bumps the child's copy).
    static FORKS: AtomicU64 = AtomicU64::new(0);
    static REGISTER: Once = Once::new();
    /// Whether the handler is registered; if not, the epoch is the pid.
    static REGISTERED: AtomicBool = AtomicBool::new(false);

    /// Runs in the child after `fork`, in the forking thread, before
    /// `fork` returns. An atomic increment: async-signal-safe, no panic.
    extern "C" fn on_fork_child() {
        FORKS.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn epoch() -> u64 {
        REGISTER.call_once(|| {
            // SAFETY: `pthread_atfork` only stores the three function
            // pointers. The one given is a plain `extern "C" fn` with
            // `'static` lifetime that does one atomic increment: it
            // allocates nothing, takes no lock and cannot unwind, so it is
            // safe to run in a child forked from a multithreaded process.
            let rc = unsafe { libc::pthread_atfork(None, None, Some(on_fork_child)) };
            REGISTERED.store(rc == 0, Ordering::Relaxed);
        });
        if REGISTERED.load(Ordering::Relaxed) {
            // Relaxed is enough: a child reads the counter in the thread
            // that ran the handler, after it in program order.
            FORKS.load(Ordering::Relaxed)
        } else {
            // Registration failed (out of memory): fall back to the pid,
            // tagged so it never equals a counter value.
            (1 << 63) | u64::from(std::process::id())
        }
    }
}

#[cfg(not(unix))]
mod fork {
    //! No `fork` on this platform: the epoch never changes.
    pub(super) fn epoch() -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ_and_fill_every_byte() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        fill(&mut a);
        fill(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0; 32]);
        assert_ne!(next_u64(), next_u64());
    }

    #[test]
    fn reseeds_after_its_budget() {
        // Drain this thread's budget, then check the next draw comes from a
        // fresh generator (a full budget minus the draw).
        fill(&mut [0u8; 1]);
        let left = LOCAL
            .with_borrow(|l| l.as_ref().map(|l| l.left))
            .unwrap_or(0);
        let mut buf = vec![0u8; usize::try_from(left).unwrap_or(0)];
        fill(&mut buf);
        assert_eq!(LOCAL.with_borrow(|l| l.as_ref().map(|l| l.left)), Some(0));
        fill(&mut [0u8; 32]);
        assert_eq!(
            LOCAL.with_borrow(|l| l.as_ref().map(|l| l.left)),
            Some(RESEED_AFTER - 32)
        );
    }

    #[test]
    fn a_new_epoch_reseeds() {
        fill(&mut [0u8; 8]);
        // Pretend the process forked: mark this thread's generator as seeded
        // in another epoch and remember its next output.
        let (next, old_epoch) = LOCAL.with_borrow_mut(|l| {
            let l = l.as_mut().expect("seeded");
            l.epoch = l.epoch.wrapping_add(1);
            let mut copy = l.rng.clone();
            let mut next = [0u8; 32];
            copy.fill_bytes(&mut next);
            (next, l.epoch)
        });
        let mut got = [0u8; 32];
        fill(&mut got);
        assert_ne!(got, next, "the stale stream went on");
        assert_ne!(
            LOCAL.with_borrow(|l| l.as_ref().map(|l| l.epoch)),
            Some(old_epoch)
        );
    }

    #[test]
    fn os_fill_fills() {
        let mut a = [0u8; 32];
        os_fill(&mut a);
        assert_ne!(a, [0; 32]);
    }
}
