//! A dudect-style timing check of token validation (Reparaz, Balasch and
//! Verbauwhede, "Dude, is my code constant time?", 2017).
//!
//! For each pair of input classes, measurements of the two are interleaved
//! at random, then compared with Welch's t-test: on all samples, and on the
//! samples under several percentiles of the pooled distribution (cropping
//! cuts the long tail that interrupts and frequency changes add). A |t|
//! above 4.5 means the two classes' timings differ with high confidence.
//!
//! The pairs:
//! - `miss_early_vs_late`: tokens that differ from a live token in the first
//!   character versus in the last full character: an attacker comparing
//!   these learns whether lookups compare tokens byte by byte.
//! - `miss_near_vs_far`: one character away from a live token versus a fresh
//!   random token: does a near miss cost more?
//! - `hit_vs_near_miss`: a live token versus one character away from it.
//!   Informational: a hit does more work (it touches the session) and the
//!   answer itself tells the client whether its token is valid, so this
//!   timing reveals nothing it does not already know. It is reported, not
//!   held to the threshold.
//! - `token_eq_early_vs_late`: `SessionToken`'s `==` on tokens differing in
//!   the first versus the last byte (the `subtle` comparison).
//!
//! Run: `cargo bench --bench ct_validate` (add `-- --samples N` for N
//! measurements per pair, default 500,000, each timing 8 operations). Exits non-zero when a pair
//! held to the threshold reaches |t| >= 4.5.

use std::hint::black_box;
use std::time::Instant;

use sesame::{ManualClock, SessionToken, Sessions};

/// |t| at or above this means "timing differs" (dudect's threshold).
const T_THRESHOLD: f64 = 4.5;
/// Live sessions in the store: enough that the map is not all in L1.
const LIVE: usize = 100_000;
/// Percentiles of the pooled samples the cropped tests keep.
const CROPS: [f64; 5] = [0.25, 0.5, 0.75, 0.9, 0.99];

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// xorshift64*: a fast, seedable generator for class choice (no need for
/// crypto here, only for no pattern the CPU could learn).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Running mean and variance (Welford).
#[derive(Default, Clone, Copy)]
struct Moments {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    fn var(&self) -> f64 {
        if self.n < 2.0 {
            0.0
        } else {
            self.m2 / (self.n - 1.0)
        }
    }
}

/// Welch's t statistic of two samples.
fn welch_t(a: &Moments, b: &Moments) -> f64 {
    let se = (a.var() / a.n + b.var() / b.n).sqrt();
    if se == 0.0 {
        0.0
    } else {
        (a.mean - b.mean) / se
    }
}

/// Results of one pair: t uncropped and the largest |t| over the crops.
struct Report {
    name: &'static str,
    held: bool,
    samples: usize,
    mean_ns: [f64; 2],
    t_all: f64,
    t_max_crop: f64,
}

impl Report {
    fn worst(&self) -> f64 {
        self.t_all.abs().max(self.t_max_crop.abs())
    }
}

/// Measurements per chunk: inputs for a chunk are generated (untimed), then
/// measured in order.
const CHUNK: usize = 4_096;
/// Operations timed together per measurement, all of one class: divides
/// the clock's own cost and jitter.
const BATCH: usize = 8;

/// Measures `op` on `samples` batches of fresh inputs from `gen`, each batch
/// of a class chosen at random. Inputs of both classes sit in one buffer in
/// measuring order, so memory layout does not follow the class.
fn measure<I>(
    name: &'static str,
    held: bool,
    samples: usize,
    rng: &mut Rng,
    mut generate: impl FnMut(usize, &mut Rng) -> I,
    mut op: impl FnMut(&I),
) -> Report {
    let mut times: Vec<(u32, u8)> = Vec::with_capacity(samples);
    let mut inputs: Vec<I> = Vec::with_capacity(CHUNK * BATCH);
    let mut classes: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut warm = true;
    while times.len() < samples {
        inputs.clear();
        classes.clear();
        for _ in 0..CHUNK {
            let class = (rng.next() >> 63) as usize;
            classes.push(class as u8);
            for _ in 0..BATCH {
                inputs.push(generate(class, rng));
            }
        }
        for (k, batch) in inputs.chunks(BATCH).enumerate() {
            let start = Instant::now();
            for input in batch {
                op(black_box(input));
            }
            let ns = start.elapsed().as_nanos();
            // The first chunk warms caches and predictors: not counted.
            if !warm && times.len() < samples {
                times.push((u32::try_from(ns).unwrap_or(u32::MAX), classes[k]));
            }
        }
        warm = false;
    }
    let mut sorted: Vec<u32> = times.iter().map(|&(t, _)| t).collect();
    sorted.sort_unstable();
    let moments = |limit: u32| {
        let mut m = [Moments::default(); 2];
        for &(t, c) in &times {
            if t <= limit {
                m[usize::from(c)].push(f64::from(t) / BATCH as f64);
            }
        }
        m
    };
    let all = moments(u32::MAX);
    let t_max_crop = CROPS
        .iter()
        .map(|&p| {
            let limit = sorted[((sorted.len() - 1) as f64 * p) as usize];
            let m = moments(limit);
            welch_t(&m[0], &m[1])
        })
        .fold(0.0f64, |acc, t| if t.abs() > acc.abs() { t } else { acc });
    Report {
        name,
        held,
        samples,
        mean_ns: [all[0].mean, all[1].mean],
        t_all: welch_t(&all[0], &all[1]),
        t_max_crop,
    }
}

/// `token` with the character at `pos` replaced by another of the
/// alphabet, `shift` steps on (1..=63, so always different).
fn tweak(token: &[u8; 43], pos: usize, shift: usize) -> [u8; 43] {
    let mut b = *token;
    let v = ALPHABET.iter().position(|&c| c == b[pos]).unwrap_or(0);
    b[pos] = ALPHABET[(v + shift) % 64];
    b
}

fn text(t: &SessionToken) -> [u8; 43] {
    let mut b = [0u8; 43];
    b.copy_from_slice(t.as_str().as_bytes());
    b
}

fn main() {
    let mut samples = 500_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--samples" {
            samples = args.next().and_then(|n| n.parse().ok()).unwrap_or(samples);
        }
        // Other arguments (cargo bench passes `--bench`) are ignored.
    }

    let sessions = Sessions::<(), String>::builder()
        .clock(ManualClock::new()) // frozen time: nothing expires mid-run
        .reaper_interval(None)
        .max_sessions(LIVE * 2)
        .build()
        .expect("valid options");
    let live: Vec<[u8; 43]> = (0..LIVE)
        .map(|_| text(&sessions.create(()).expect("room").0))
        .collect();
    let pick = |rng: &mut Rng| &live[(rng.next() as usize) % LIVE];
    let shift = |rng: &mut Rng| 1 + (rng.next() % 63) as usize;
    let validate = |t: &[u8; 43]| {
        black_box(sessions.validate(&t[..]));
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    // Position 41 is the last character carrying six data bits (42 carries
    // four and two zero bits), so any replacement stays canonical.
    let early_late = |class: usize, rng: &mut Rng| {
        let pos = if class == 0 { 0 } else { 41 };
        tweak(pick(rng), pos, shift(rng))
    };
    let near_far = |class: usize, rng: &mut Rng| {
        if class == 0 {
            tweak(pick(rng), (rng.next() % 42) as usize, shift(rng))
        } else {
            text(&SessionToken::generate())
        }
    };
    let hit_near = |class: usize, rng: &mut Rng| {
        if class == 0 {
            *pick(rng)
        } else {
            tweak(pick(rng), (rng.next() % 42) as usize, shift(rng))
        }
    };
    // The generators make what they claim.
    let mut check = Rng(7);
    for _ in 0..1_000 {
        for class in 0..2 {
            assert!(
                sessions
                    .validate(&early_late(class, &mut check)[..])
                    .is_none()
            );
            assert!(
                sessions
                    .validate(&near_far(class, &mut check)[..])
                    .is_none()
            );
        }
        assert!(sessions.validate(&hit_near(0, &mut check)[..]).is_some());
        assert!(sessions.validate(&hit_near(1, &mut check)[..]).is_none());
    }

    let mut reports = vec![
        measure(
            "miss_early_vs_late",
            true,
            samples,
            &mut rng,
            early_late,
            validate,
        ),
        measure(
            "miss_near_vs_far",
            true,
            samples,
            &mut rng,
            near_far,
            validate,
        ),
        measure(
            "hit_vs_near_miss",
            false,
            samples,
            &mut rng,
            hit_near,
            validate,
        ),
    ];
    let base = SessionToken::generate();
    reports.push(measure(
        "token_eq_early_vs_late",
        true,
        samples,
        &mut rng,
        |class, rng| {
            let mut b = *base.as_bytes();
            b[if class == 0 { 0 } else { 31 }] ^= 1 + (rng.next() % 255) as u8;
            SessionToken::from_bytes_for_tests(b)
        },
        |t: &SessionToken| {
            black_box(black_box(&base) == t);
        },
    ));

    println!(
        "dudect-style check: {LIVE} live sessions, {BATCH} operations per measurement, \
         Welch's t, threshold |t| < {T_THRESHOLD}"
    );
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>9} {:>13}  verdict",
        "pair", "samples", "mean0 ns", "mean1 ns", "t(all)", "max t(crop)"
    );
    let mut failed = false;
    for r in &reports {
        let verdict = match (r.held, r.worst() < T_THRESHOLD) {
            (true, true) => "ok",
            (true, false) => {
                failed = true;
                "LEAK?"
            }
            (false, true) => "ok (informational)",
            (false, false) => "differs (informational: a hit does more work)",
        };
        println!(
            "{:<24} {:>10} {:>10.1} {:>10.1} {:>9.2} {:>13.2}  {verdict}",
            r.name, r.samples, r.mean_ns[0], r.mean_ns[1], r.t_all, r.t_max_crop
        );
    }
    if failed {
        std::process::exit(1);
    }
}
