//! Many threads at once, with the reaper running: no lost update, no
//! rotated-away token that still works, an exact count, no deadlock.

mod guard;

use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use guard::Background;
use sesame::{ManualClock, SessionToken, Sessions};

const WORKERS: usize = 4;
const OPS: usize = 3_000;
const SHARED_UPDATES: u64 = 500;

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct Outcome {
    mine: Vec<(SessionToken, u64)>,
    retired: Vec<SessionToken>,
}

fn worker(s: Sessions<u64>, shared: SessionToken, id: usize) -> Outcome {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1));
    let mut mine: Vec<(SessionToken, u64)> = Vec::new();
    let mut retired = Vec::new();
    let me = format!("worker{id}");
    for i in 0..OPS {
        if i as u64 % (OPS as u64 / SHARED_UPDATES) == 0 {
            s.update(&shared, |n| *n += 1)
                .expect("shared session lives");
        }
        let op = rng.next() % 100;
        if mine.is_empty() || op < 20 {
            let (t, _) = s.create(0).expect("room");
            mine.push((t, 0));
            continue;
        }
        let idx = (rng.next() as usize) % mine.len();
        match op {
            20..=54 => {
                let (t, n) = &mut mine[idx];
                s.update(&*t, |v| *v += 1).expect("own session lives");
                *n += 1;
            }
            55..=74 => {
                let (t, n) = &mine[idx];
                assert_eq!(s.get(t), Some(*n), "read my own writes");
            }
            75..=84 => {
                let (t, n) = mine.swap_remove(idx);
                let t2 = s.rotate(&t).expect("rotate own");
                assert!(s.validate(&t).is_none(), "rotated-away token works");
                retired.push(t);
                mine.push((t2, n));
            }
            85..=92 => {
                let (t, n) = mine.swap_remove(idx);
                let t2 = s.login(&t, me.clone()).expect("login own");
                retired.push(t);
                mine.push((t2, n));
            }
            _ => {
                let (t, _) = mine.swap_remove(idx);
                assert!(s.logout(&t));
                retired.push(t);
            }
        }
    }
    Outcome { mine, retired }
}

#[test]
fn concurrent_mixed_operations_keep_invariants() {
    let clock = ManualClock::new();
    let s = Sessions::<u64>::builder()
        .clock(clock.clone())
        .idle_timeout(Duration::from_secs(3600))
        .absolute_timeout(Duration::from_secs(7200))
        .max_sessions(1_000_000)
        .unlimited_sessions_per_user() // each worker logs in as itself thousands of times
        .shards(8)
        .reaper_interval(Some(Duration::from_millis(1)))
        .build()
        .unwrap();
    let (shared, _) = s.create(0).unwrap();
    // Churn that the reaper must clean up: short-lived sessions nobody touches
    // again, and a revoker racing logins of a victim principal. It runs until
    // stopped: by `finish` below, or by the guard's drop if the test fails.
    let victim_tokens = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut side = Background::new();
    {
        let (s, clock, victims) = (s.clone(), clock.clone(), victim_tokens.clone());
        side.spawn(move |stop| {
            let victim = "victim".to_string();
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) {
                let (t, _) = s.create(0).unwrap();
                let t = s.login(&t, victim.clone()).unwrap();
                victims.lock().push(t);
                if i % 3 == 0 {
                    s.revoke_user(&victim);
                }
                s.run_pending();
                clock.advance(Duration::from_millis(100));
                i += 1;
                if i % 50 == 0 {
                    thread::yield_now();
                }
            }
        });
    }

    /// Tells the watchdog a worker is done, also when it panicked.
    struct Done(mpsc::Sender<()>);
    impl Drop for Done {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let (tx, rx) = mpsc::channel();
    let workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            let (s, shared, done) = (s.clone(), shared.clone(), Done(tx.clone()));
            thread::spawn(move || {
                let _done = done;
                worker(s, shared, id)
            })
        })
        .collect();
    // Watchdog: a deadlock fails the test instead of hanging it.
    for _ in 0..WORKERS {
        rx.recv_timeout(Duration::from_secs(120))
            .expect("workers finished in time (deadlock?)");
    }
    let outcomes: Vec<Outcome> = workers
        .into_iter()
        .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        .collect();
    side.finish();

    // No lost update on the shared session.
    assert_eq!(s.get(&shared), Some(WORKERS as u64 * SHARED_UPDATES));
    let mut live = 1;
    for o in &outcomes {
        for (t, n) in &o.mine {
            assert_eq!(s.get(t), Some(*n), "lost update on an owned session");
        }
        for t in &o.retired {
            assert!(s.validate(t).is_none(), "retired token still works");
        }
        live += o.mine.len();
    }
    // Every victim session ends with a final revocation.
    s.revoke_user(&"victim".to_string());
    assert!(s.sessions_of(&"victim".to_string()).is_empty());
    for t in victim_tokens.lock().iter() {
        assert!(s.validate(t).is_none(), "revoked victim session works");
    }
    s.run_pending();
    assert_eq!(s.len(), live, "len() equals the live sessions");
    let st = s.stats();
    assert_eq!(st.live as usize, live);
    assert_eq!(
        st.created,
        st.live
            + st.destroyed
            + st.revoked
            + st.expired_idle
            + st.expired_absolute
            + st.evicted_capacity
            + st.evicted_per_user
    );
}
