//! Runs operations against the engine and the model side by side.

use std::time::{Duration, SystemTime};

use crossbeam_channel::Receiver;

use super::reference::{Model, ModelConfig, ModelInfo};
use crate::events::Event;
use crate::session::{Handle, SessionInfo};
use crate::token::{SessionToken, TokenInput};
use crate::{ManualClock, Sessions};

/// Most operations one run executes; the rest are ignored (see the
/// [module docs](super#limits)).
pub const MAX_OPS: usize = 1_000;

/// Principals are `0..PRINCIPALS`: few, so sessions share them.
const PRINCIPALS: u8 = 4;

/// The base64url alphabet, for near-miss tokens.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// How a presented token reaches the engine ([`TokenInput`] has four forms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `&str`
    Str,
    /// `&String`
    String,
    /// `&[u8]`
    Bytes,
    /// `&SessionToken` (when the text parses; otherwise `&str`)
    Token,
}

/// Which token an operation presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenRef {
    /// The `n`-th most recent token the engine issued (0 is the newest;
    /// modulo how many; an unknown token if none yet), current or rotated
    /// away.
    Issued(usize, Form),
    /// An issued token with the character at `pos % 43` replaced by the
    /// base64url character `with % 64` (may equal the original, or break
    /// the canonical form).
    NearMiss(usize, u8, u8),
    /// A well-formed token nobody issued.
    Unknown([u8; 32]),
    /// Arbitrary bytes (mostly malformed), as `&[u8]`, or as `&str` when
    /// they are UTF-8 and the flag is set.
    Raw(Vec<u8>, bool),
}

/// Which handle [`Op::Revoke`] names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandleRef {
    /// The `n`-th most recent handle issued (modulo how many).
    Issued(usize),
    /// Any handle.
    Random(u64),
}

/// One engine operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `create(data)`
    Create(u64),
    /// `validate(token)`
    Validate(TokenRef),
    /// `get(token)`
    Get(TokenRef),
    /// `info(token)`
    Info(TokenRef),
    /// `update(token, |d| ..)` mixing in the value.
    Update(TokenRef, u64),
    /// `rotate(token)`
    Rotate(TokenRef),
    /// `login(token, principal % 4)`
    Login(TokenRef, u8),
    /// `logout(token)`
    Logout(TokenRef),
    /// `revoke_user(principal % 4)`
    RevokeUser(u8),
    /// `revoke(principal % 4, handle)`
    Revoke(u8, HandleRef),
    /// `sessions_of(principal % 4)`
    SessionsOf(u8),
    /// Moves the manual clock forward by this many ms.
    Advance(u32),
    /// Moves the manual clock back by this many ms.
    Rewind(u32),
    /// Moves the manual clock forward to the `n % len`-th of the model's
    /// [`Model::upcoming`] instants, or 1 ms short of it when the flag is
    /// set (nothing if none is upcoming).
    Jump(u8, bool),
    /// `run_pending()`
    RunPending,
}

/// The engine configuration of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HarnessConfig {
    /// Shard count (a power of two).
    pub shards: usize,
    /// Capacity. With more than one shard, at least [`MAX_OPS`].
    pub max_sessions: usize,
    /// Per-principal limit.
    pub max_per_user: Option<usize>,
    /// Idle timeout, ms (at least 1000).
    pub idle_ms: u64,
    /// Absolute timeout, ms (at least the idle timeout).
    pub absolute_ms: u64,
    /// Rotation grace, ms (shorter than the idle timeout, at most 60 s).
    pub grace_ms: u64,
}

impl HarnessConfig {
    /// Whether the model can predict this configuration exactly.
    pub fn check(&self) -> bool {
        self.shards == 1 || self.max_sessions >= MAX_OPS
    }
}

/// Update closure shared by both sides: mixes `v` into the data and returns
/// the old value.
fn mix(d: &mut u64, v: u64) -> u64 {
    let old = *d;
    *d = d.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(v);
    old
}

/// The engine and the model, run in lockstep.
pub struct Harness {
    engine: Sessions<u64, u8>,
    clock: ManualClock,
    events: Receiver<Event<u8>>,
    model: Model,
    tokens: Vec<SessionToken>,
    handles: Vec<Handle>,
    /// Wall time of engine ms 0, learnt from the first metadata seen.
    origin: Option<SystemTime>,
    step: usize,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// Builds the engine (manual clock at 0, no reaper thread) and the model.
    ///
    /// # Panics
    ///
    /// If the builder refuses `cfg`, or the model cannot predict it
    /// ([`HarnessConfig::check`]).
    pub fn new(cfg: &HarnessConfig) -> Self {
        assert!(cfg.check(), "config not modelled exactly: {cfg:?}");
        let clock = ManualClock::new();
        let mut b = Sessions::<u64, u8>::builder()
            .clock(clock.clone())
            .reaper_interval(None)
            .shards(cfg.shards)
            .max_sessions(cfg.max_sessions)
            .idle_timeout(Duration::from_millis(cfg.idle_ms))
            .absolute_timeout(Duration::from_millis(cfg.absolute_ms))
            .rotation_grace(Duration::from_millis(cfg.grace_ms));
        b = match cfg.max_per_user {
            Some(n) => b.max_sessions_per_user(n),
            None => b.unlimited_sessions_per_user(),
        };
        let engine = match b.build() {
            Ok(e) => e,
            Err(e) => panic!("builder refused {cfg:?}: {e}"),
        };
        // One operation emits at most one event per session plus two.
        let events = engine.subscribe(2 * MAX_OPS + 8);
        let model = Model::new(
            ModelConfig {
                idle_ms: cfg.idle_ms,
                absolute_ms: cfg.absolute_ms,
                max_sessions: cfg.max_sessions,
                max_per_user: cfg.max_per_user,
                grace_ms: cfg.grace_ms,
            },
            0,
        );
        Self {
            engine,
            clock,
            events,
            model,
            tokens: Vec::new(),
            handles: Vec::new(),
            origin: None,
            step: 0,
        }
    }

    /// The presented bytes and how to pass them.
    fn presented(&self, r: &TokenRef) -> (Vec<u8>, Form) {
        let issued = |n: usize| {
            let len = self.tokens.len();
            (len > 0).then(|| &self.tokens[len - 1 - n % len])
        };
        match r {
            TokenRef::Issued(n, form) => match issued(*n) {
                Some(t) => (t.as_str().as_bytes().to_vec(), *form),
                None => (SessionToken::from_bytes([7; 32]).as_str().into(), *form),
            },
            TokenRef::NearMiss(n, pos, with) => {
                let mut text = match issued(*n) {
                    Some(t) => t.as_str().as_bytes().to_vec(),
                    None => SessionToken::from_bytes([0; 32]).as_str().into(),
                };
                text[usize::from(*pos) % 43] = ALPHABET[usize::from(*with) % 64];
                (text, Form::Str)
            }
            TokenRef::Unknown(b) => (SessionToken::from_bytes(*b).as_str().into(), Form::Token),
            TokenRef::Raw(b, as_str) => (b.clone(), if *as_str { Form::Str } else { Form::Bytes }),
        }
    }

    /// Calls `f` with the engine input for `bytes` in `form`.
    fn with_input<R>(bytes: &[u8], form: Form, f: impl FnOnce(&dyn TokenInput) -> R) -> R {
        let text = std::str::from_utf8(bytes).ok();
        match (form, text) {
            (Form::Token, Some(s)) => match SessionToken::parse(s) {
                Ok(t) => f(&t),
                Err(_) => f(&s),
            },
            (Form::String, Some(s)) => f(&s.to_owned()),
            (Form::Str, Some(s)) => f(&s),
            _ => f(&bytes),
        }
    }

    fn check_info(&mut self, got: &SessionInfo<u8>, want: &ModelInfo) {
        let origin = *self
            .origin
            .get_or_insert_with(|| got.created - Duration::from_millis(want.created));
        let at = |ms: u64| origin + Duration::from_millis(ms);
        let step = self.step;
        assert_eq!(got.handle, want.handle, "step {step}: handle");
        assert_eq!(got.principal, want.principal, "step {step}: principal");
        assert_eq!(got.created, at(want.created), "step {step}: created");
        assert_eq!(got.last_seen, at(want.last_seen), "step {step}: last_seen");
        assert_eq!(
            got.token_issued,
            at(want.issued),
            "step {step}: token_issued"
        );
        assert_eq!(got.expires, at(want.expires), "step {step}: expires");
        assert_eq!(
            got.absolute_expires,
            at(want.absolute_expires),
            "step {step}: absolute_expires"
        );
    }

    /// Applies one operation to both sides and checks every observable.
    ///
    /// # Panics
    ///
    /// On the first disagreement, naming the step and what differed (never
    /// a token's text).
    pub fn apply(&mut self, op: &Op) {
        let step = self.step;
        match op {
            Op::Create(data) => {
                let got = self.engine.create(*data);
                let want = self.model.create(*data);
                match (got, want) {
                    (Ok((token, handle)), Ok(sid)) => {
                        self.model.bind_created(sid, token.as_str(), handle);
                        self.tokens.push(token);
                        self.handles.push(handle);
                    }
                    (Err(e), Err(k)) => assert_eq!(e.kind(), k, "step {step}: create error"),
                    (got, want) => panic!(
                        "step {step}: create: engine {:?}, model {want:?}",
                        got.map(|(_, h)| h)
                    ),
                }
            }
            Op::Validate(r) => {
                let (bytes, form) = self.presented(r);
                let got = Self::with_input(&bytes, form, |t| self.engine.validate(t));
                assert_eq!(got, self.model.validate(&bytes), "step {step}: validate");
            }
            Op::Get(r) => {
                let (bytes, form) = self.presented(r);
                let got = Self::with_input(&bytes, form, |t| self.engine.get(t));
                assert_eq!(got, self.model.get(&bytes), "step {step}: get");
            }
            Op::Info(r) => {
                let (bytes, form) = self.presented(r);
                let got = Self::with_input(&bytes, form, |t| self.engine.info(t));
                let want = self.model.info(&bytes);
                assert_eq!(got.is_some(), want.is_some(), "step {step}: info");
                if let (Some(g), Some(w)) = (got, want) {
                    self.check_info(&g, &w);
                }
            }
            Op::Update(r, v) => {
                let (bytes, form) = self.presented(r);
                let got = Self::with_input(&bytes, form, |t| self.engine.update(t, |d| mix(d, *v)));
                let want = self.model.update(&bytes, |d| mix(d, *v));
                assert_eq!(got.map_err(|e| e.kind()), want, "step {step}: update");
            }
            Op::Rotate(r) | Op::Login(r, _) => {
                let login = match op {
                    Op::Login(_, p) => Some(p % PRINCIPALS),
                    _ => None,
                };
                let (bytes, form) = self.presented(r);
                let got = Self::with_input(&bytes, form, |t| match login {
                    Some(p) => self.engine.login(t, p),
                    None => self.engine.rotate(t),
                });
                match (got, self.model.rotate(&bytes, login)) {
                    (Ok(token), Ok(sid)) => {
                        self.model.bind_rotated(sid, token.as_str());
                        self.tokens.push(token);
                    }
                    (Err(e), Err(k)) => assert_eq!(e.kind(), k, "step {step}: rotate error"),
                    (got, want) => panic!(
                        "step {step}: rotate/login: engine ok {}, model {want:?}",
                        got.is_ok()
                    ),
                }
            }
            Op::Logout(r) => {
                let (bytes, form) = self.presented(r);
                let got = Self::with_input(&bytes, form, |t| self.engine.logout(t));
                assert_eq!(got, self.model.logout(&bytes), "step {step}: logout");
            }
            Op::RevokeUser(p) => {
                let p = p % PRINCIPALS;
                assert_eq!(
                    self.engine.revoke_user(&p),
                    self.model.revoke_user(p),
                    "step {step}: revoke_user"
                );
            }
            Op::Revoke(p, h) => {
                let p = p % PRINCIPALS;
                let handle = match h {
                    HandleRef::Issued(n) if !self.handles.is_empty() => {
                        self.handles[self.handles.len() - 1 - n % self.handles.len()]
                    }
                    HandleRef::Issued(n) => Handle::from_u64(*n as u64),
                    HandleRef::Random(n) => Handle::from_u64(*n),
                };
                assert_eq!(
                    self.engine.revoke(&p, handle),
                    self.model.revoke(p, handle),
                    "step {step}: revoke"
                );
            }
            Op::SessionsOf(p) => {
                let p = p % PRINCIPALS;
                let got = self.engine.sessions_of(&p);
                let want = self.model.sessions_of(p);
                assert_eq!(got.len(), want.len(), "step {step}: sessions_of length");
                for (g, w) in got.iter().zip(&want) {
                    self.check_info(g, w);
                }
            }
            Op::Advance(ms) => {
                self.clock.advance(Duration::from_millis(u64::from(*ms)));
                self.model.set_clock(crate::Clock::now_millis(&self.clock));
            }
            Op::Rewind(ms) => {
                self.clock.rewind(Duration::from_millis(u64::from(*ms)));
                self.model.set_clock(crate::Clock::now_millis(&self.clock));
            }
            Op::Jump(n, early) => {
                let upcoming = self.model.upcoming();
                if !upcoming.is_empty() {
                    let at = upcoming[usize::from(*n) % upcoming.len()] - u64::from(*early);
                    self.clock.set(Duration::from_millis(at));
                    self.model.set_clock(crate::Clock::now_millis(&self.clock));
                }
            }
            Op::RunPending => {
                assert_eq!(
                    self.engine.run_pending(),
                    self.model.run_pending(),
                    "step {step}: run_pending"
                );
            }
        }
        self.check_state();
        self.step += 1;
    }

    /// `len`, `stats` and the events of the last operation.
    fn check_state(&mut self) {
        let step = self.step;
        assert_eq!(self.engine.len(), self.model.len(), "step {step}: len");
        assert_eq!(self.engine.is_empty(), self.model.is_empty());
        assert_eq!(
            self.engine.stats(),
            self.model.stats(),
            "step {step}: stats"
        );
        let mut got: Vec<Event<u8>> = self.events.try_iter().collect();
        let want = self.model.take_events();
        for w in &want {
            match got.iter().position(|g| g == w) {
                Some(i) => {
                    got.swap_remove(i);
                }
                None => panic!("step {step}: missing event {w:?}"),
            }
        }
        assert!(got.is_empty(), "step {step}: unexpected events {got:?}");
    }
}

/// Runs `ops` (at most [`MAX_OPS`]) on a fresh [`Harness`].
///
/// # Panics
///
/// On the first disagreement between engine and model.
pub fn run(cfg: &HarnessConfig, ops: &[Op]) {
    let mut h = Harness::new(cfg);
    for op in ops.iter().take(MAX_OPS) {
        h.apply(op);
    }
}

/// Reads a configuration and operations from arbitrary bytes (the
/// `engine_ops` fuzz target), then [`run`]s them. Every input decodes to
/// something; a short one to a short run.
///
/// # Panics
///
/// On the first disagreement between engine and model.
pub fn run_bytes(data: &[u8]) {
    let mut r = Reader(data);
    let cfg = r.config();
    let mut ops = Vec::new();
    while !r.0.is_empty() && ops.len() < MAX_OPS {
        ops.push(r.op());
    }
    run(&cfg, &ops);
}

/// A cursor over fuzz input; reads past the end yield zeros.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }

    fn config(&mut self) -> HarnessConfig {
        let mode = self.u8();
        // Odd modes: any ms; even: multiples of 500 ms (deadlines coincide).
        let (idle_ms, absolute_ms) = if mode & 4 == 0 {
            let idle = 500 * (2 + u64::from(self.u8() % 11));
            (idle, idle + 500 * u64::from(self.u8() % 17))
        } else {
            let idle = 1_000 + u64::from(self.u16() % 5_000);
            (idle, idle + u64::from(self.u16() % 8_000))
        };
        let (shards, max_sessions) = if mode & 1 == 0 {
            (1, 1 + usize::from(self.u8() % 8))
        } else {
            (1 << (self.u8() % 5), MAX_OPS)
        };
        let max_per_user = match self.u8() % 4 {
            0 => None,
            n => Some(usize::from(n).min(max_sessions)),
        };
        let grace_ms = if mode & 2 == 0 {
            0
        } else {
            let g = 1 + u64::from(self.u16()) % (idle_ms - 1);
            if mode & 8 == 0 {
                (g / 250).max(1) * 250
            } else {
                g
            }
        };
        HarnessConfig {
            shards,
            max_sessions,
            max_per_user,
            idle_ms,
            absolute_ms,
            grace_ms,
        }
    }

    fn token(&mut self) -> TokenRef {
        match self.u8() % 16 {
            0..=9 => {
                let form = match self.u8() % 4 {
                    0 => Form::Str,
                    1 => Form::String,
                    2 => Form::Bytes,
                    _ => Form::Token,
                };
                TokenRef::Issued(usize::from(self.u8()), form)
            }
            10 | 11 => TokenRef::NearMiss(usize::from(self.u8()), self.u8(), self.u8()),
            12 => {
                let mut b = [0u8; 32];
                for x in &mut b {
                    *x = self.u8();
                }
                TokenRef::Unknown(b)
            }
            _ => {
                let n = usize::from(self.u8() % 48);
                let as_str = self.u8() & 1 == 1;
                let bytes = (0..n).map(|_| self.u8()).collect();
                TokenRef::Raw(bytes, as_str)
            }
        }
    }

    fn op(&mut self) -> Op {
        match self.u8() % 16 {
            0 | 1 => Op::Create(self.u64()),
            2 => Op::Validate(self.token()),
            3 => Op::Get(self.token()),
            4 => Op::Info(self.token()),
            5 => Op::Update(self.token(), self.u64()),
            6 => Op::Rotate(self.token()),
            7 => Op::Login(self.token(), self.u8()),
            8 => Op::Logout(self.token()),
            9 => Op::RevokeUser(self.u8()),
            10 => Op::Revoke(
                self.u8(),
                if self.u8() & 1 == 0 {
                    HandleRef::Issued(usize::from(self.u8()))
                } else {
                    HandleRef::Random(self.u64())
                },
            ),
            11 => Op::SessionsOf(self.u8()),
            // Multiples of 250 ms land on the (often round) deadlines.
            12 => Op::Advance(250 * u32::from(self.u8() % 16)),
            13 => Op::Advance(u32::from(self.u16())),
            14 => match self.u8() {
                n if n & 1 == 0 => Op::Rewind(250 * u32::from(n % 32)),
                n => Op::Jump(n >> 2, n & 2 == 2),
            },
            _ => Op::RunPending,
        }
    }
}
