//! A plain loop of validate hits, for profilers: no criterion, a fixed
//! number of calls inside one `#[inline(never)]` function ([`hits`]) that a
//! profiler can select, on the same stores and access orders as
//! `benches/sessions.rs`.
//!
//! ```text
//! cargo bench --bench hit_loop -- [STORE] [SIZE] [ORDER] [CALLS]
//! cargo bench --bench hit_loop -- sesame 1000000 random 2000000
//! ```
//!
//! STORE is `sesame`, `floor`, `moka`, `rwlock` or `tower_sessions`
//! (default: sesame then floor; `+` runs several one after the other), or
//! `sesame_frozen`: sesame on a
//! `ManualClock` that never moves, so a hit never writes its entry (the
//! touch stores only when time has moved): the difference to `sesame` is the
//! touch's write (and the clock read); ORDER is `random` (default), `zipf` or
//! `seq`. One pass over the sequence runs untimed first, so the timed calls
//! meet caches in their steady state. Prints ns per call in the thread's
//! CPU time.
//!
//! `lock_cost` times CALLS uncontended `parking_lot::RwLock` reads (what a
//! lock-free read could save a hit).
//!
//! `A/B` (any two stores: `sesame/floor`, `sesame/rwlock`, ...) fills both
//! stores and times them in alternating blocks of 20k calls, so
//! that load from other processes falls on both alike: for differences too
//! small to see across separate runs on a shared machine.
//!
//! Under callgrind, collect only the loop:
//!
//! ```text
//! valgrind --tool=callgrind --cache-sim=yes --collect-atstart=no \
//!     --toggle-collect='hit_loop::hits*' target/release/deps/hit_loop-HASH sesame 1000000 random 200000
//! ```

mod common;

use std::hint::black_box;

use sesame::{ManualClock, Sessions};

use common::{
    Cursor, Floor, IDLE, Moka, RwMap, SEED, Seq, Sesame, Store, TowerSessions, populated, shuffled,
    thread_cpu, zipf,
};

/// sesame on a clock that never moves: every hit finds its session touched
/// at the current time already and skips the store.
struct Frozen(Sesame);

impl Store for Frozen {
    const NAME: &'static str = "sesame_frozen";
    fn with_capacity(n: usize) -> Self {
        Self(Sesame(
            Sessions::<u64, u64>::builder()
                .idle_timeout(IDLE)
                .max_sessions(n.max(1 << 20) * 2)
                .reaper_interval(None)
                .clock(ManualClock::new())
                .build()
                .expect("valid bench config"),
        ))
    }
    fn create(&self) -> String {
        self.0.create()
    }
    fn validate(&self, token: &str) -> Option<u64> {
        self.0.validate(token)
    }
    fn update(&self, token: &str) -> bool {
        self.0.update(token)
    }
    fn rotate(&self, token: &str) -> Option<String> {
        self.0.rotate(token)
    }
    fn login(&self, token: &str, user: u64) -> Option<String> {
        self.0.login(token, user)
    }
    fn logout(&self, token: &str) -> bool {
        self.0.logout(token)
    }
}

/// `calls` validations of the tokens `cur` presents.
#[inline(never)]
fn hits<S: Store>(s: &S, cur: &mut Cursor<'_>, calls: usize) -> u64 {
    let mut sum = 0u64;
    for _ in 0..calls {
        let v = s.validate(black_box(cur.next())).expect("live session");
        sum = sum.wrapping_add(v);
    }
    sum
}

/// A filled store and its tokens in `order`.
fn prepared<S: Store>(n: usize, order: &str) -> (S, Seq) {
    let (s, tokens) = populated::<S>(n);
    let seq = match order {
        "random" => shuffled(&tokens, SEED),
        "zipf" => zipf(&tokens, SEED),
        "seq" => Seq::new(tokens.iter().map(String::as_str)),
        other => panic!("unknown order {other:?}: random, zipf or seq"),
    };
    (s, seq)
}

fn run<S: Store>(n: usize, order: &str, calls: usize) {
    let (s, seq) = prepared::<S>(n, order);
    let mut cur = seq.cursor(0);
    black_box(hits(&s, &mut cur, seq.count)); // warm-up pass
    let start = thread_cpu();
    black_box(hits(&s, &mut cur, calls));
    let took = thread_cpu() - start;
    println!(
        "validate_hit {order} {}/{n}: {:.0} ns per call ({calls} calls)",
        S::NAME,
        took.as_nanos() as f64 / calls as f64
    );
}

/// Calls per block in the A/B mode.
const BLOCK: usize = 20_000;

fn ab<A: Store, B: Store>(n: usize, order: &str, calls: usize) {
    let (a, seq_a) = prepared::<A>(n, order);
    let (b, seq_b) = prepared::<B>(n, order);
    let (mut cur_a, mut cur_b) = (seq_a.cursor(0), seq_b.cursor(0));
    black_box(hits(&a, &mut cur_a, seq_a.count)); // warm-up passes
    black_box(hits(&b, &mut cur_b, seq_b.count));
    let block = |timed: &mut dyn FnMut()| {
        let start = thread_cpu();
        timed();
        (thread_cpu() - start).as_nanos() as f64 / BLOCK as f64
    };
    let (mut ta, mut tb, mut diffs) = (0.0, 0.0, Vec::new());
    for _ in 0..calls.div_ceil(BLOCK) {
        let x = block(&mut || {
            black_box(hits(&a, &mut cur_a, BLOCK));
        });
        let y = block(&mut || {
            black_box(hits(&b, &mut cur_b, BLOCK));
        });
        ta += x;
        tb += y;
        diffs.push(y - x);
    }
    let blocks = diffs.len() as f64;
    diffs.sort_by(f64::total_cmp);
    println!(
        "validate_hit {order} {n}: {} {:.0} ns, {} {:.0} ns per call; \
         per block, {} minus {}: median {:.0} ns, quartiles {:.0} / {:.0} ({} blocks of {BLOCK})",
        A::NAME,
        ta / blocks,
        B::NAME,
        tb / blocks,
        B::NAME,
        A::NAME,
        diffs[diffs.len() / 2],
        diffs[diffs.len() / 4],
        diffs[diffs.len() * 3 / 4],
        diffs.len()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; positional arguments are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let store = args.first().map_or("sesame+floor", String::as_str);
    let n = args
        .get(1)
        .map_or(1_000_000, |a| a.parse().expect("SIZE: a number"));
    let order = args.get(2).map_or("random", String::as_str);
    let calls = args
        .get(3)
        .map_or(2_000_000, |a| a.parse().expect("CALLS: a number"));
    if store == "lock_cost" {
        // What a lock-free read (a seqlock) could save per hit: an
        // uncontended `parking_lot::RwLock` read and its release.
        let lock = parking_lot::RwLock::new(0u64);
        let start = thread_cpu();
        for _ in 0..calls {
            black_box(*black_box(&lock).read());
        }
        let took = thread_cpu() - start;
        println!(
            "RwLock read + release: {:.1} ns ({calls} calls)",
            took.as_nanos() as f64 / calls as f64
        );
        return;
    }
    // One store by name, as a type: `$f::<Type>($args)`.
    macro_rules! by_name {
        ($name:expr, $f:ident, $($arg:tt)*) => {
            match $name {
                "sesame" => $f::<Sesame>($($arg)*),
                "sesame_frozen" => $f::<Frozen>($($arg)*),
                "floor" => $f::<Floor>($($arg)*),
                "moka" => $f::<Moka>($($arg)*),
                "rwlock" => $f::<RwMap>($($arg)*),
                "tower_sessions" => $f::<TowerSessions>($($arg)*),
                other => panic!("unknown store {other:?}"),
            }
        };
    }
    if let Some((a, b)) = store.split_once('/') {
        fn ab_with<A: Store>(b: &str, n: usize, order: &str, calls: usize) {
            macro_rules! second {
                ($B:ty) => {
                    ab::<A, $B>(n, order, calls)
                };
            }
            match b {
                "sesame" => second!(Sesame),
                "sesame_frozen" => second!(Frozen),
                "floor" => second!(Floor),
                "moka" => second!(Moka),
                "rwlock" => second!(RwMap),
                "tower_sessions" => second!(TowerSessions),
                other => panic!("unknown store {other:?}"),
            }
        }
        return by_name!(a, ab_with, b, n, order, calls);
    }
    for name in store.split('+') {
        by_name!(name, run, n, order, calls);
    }
}
