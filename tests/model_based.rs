//! Model-based property test: random sequences of engine operations and
//! clock moves, run against the engine and against the naive reference model
//! in `sesame::model`; every observable result must agree (return values,
//! data, principals, handles, metadata, `len()`, every stats counter, the
//! events emitted).
//!
//! Three engine shapes: one shard with a small capacity (eviction is
//! deterministic and modelled exactly), the same with a rotation grace
//! window, and many shards with room for everything (exercises the
//! two-shard rotation path).

use proptest::prelude::*;
use sesame::model::{Form, HandleRef, HarnessConfig, MAX_OPS, Op, TokenRef, run};

fn form() -> impl Strategy<Value = Form> {
    prop_oneof![
        Just(Form::Str),
        Just(Form::String),
        Just(Form::Bytes),
        Just(Form::Token)
    ]
}

/// How far back among issued tokens or handles: mostly the last few.
fn recent() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0usize..4, 1 => 0usize..64]
}

fn token() -> impl Strategy<Value = TokenRef> {
    prop_oneof![
        // Mostly tokens the engine issued, recent ones more often.
        8 => (recent(), form()).prop_map(|(n, f)| TokenRef::Issued(n, f)),
        2 => (recent(), any::<u8>(), any::<u8>()).prop_map(|(n, p, w)| TokenRef::NearMiss(n, p, w)),
        1 => any::<[u8; 32]>().prop_map(TokenRef::Unknown),
        1 => (prop::collection::vec(any::<u8>(), 0..50), any::<bool>())
            .prop_map(|(b, s)| TokenRef::Raw(b, s)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u64>().prop_map(Op::Create),
        4 => token().prop_map(Op::Validate),
        3 => token().prop_map(Op::Get),
        2 => token().prop_map(Op::Info),
        3 => (token(), any::<u64>()).prop_map(|(t, v)| Op::Update(t, v)),
        3 => token().prop_map(Op::Rotate),
        4 => (token(), 0u8..4).prop_map(|(t, p)| Op::Login(t, p)),
        2 => token().prop_map(Op::Logout),
        1 => (0u8..4).prop_map(Op::RevokeUser),
        1 => (0u8..4, prop_oneof![
            recent().prop_map(HandleRef::Issued),
            any::<u64>().prop_map(HandleRef::Random),
        ]).prop_map(|(p, h)| Op::Revoke(p, h)),
        2 => (0u8..4).prop_map(Op::SessionsOf),
        // Clock moves in ms: mostly below a second (ticks and deadlines
        // fall between whole seconds), sometimes past every timeout.
        // Timeouts are whole multiples of 500 ms and most moves multiples of
        // 250 ms, so runs often land exactly on a deadline (the boundary
        // cases: `now == deadline` is expired, `now == grace end` refused).
        4 => (0u32..8).prop_map(|k| Op::Advance(250 * k)),
        2 => (0u32..1_500).prop_map(Op::Advance),
        1 => (0u32..20_000).prop_map(Op::Advance),
        1 => (0u32..12).prop_map(|k| Op::Rewind(250 * k)),
        3 => (any::<u8>(), any::<bool>()).prop_map(|(n, e)| Op::Jump(n, e)),
        3 => Just(Op::RunPending),
    ]
}

/// Timeouts of a few seconds, so a run crosses them many times: mostly
/// multiples of 500 ms (deadlines coincide), sometimes any ms.
fn timeouts() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        3 => (2u64..=12, 0u64..=16).prop_map(|(i, e)| (500 * i, 500 * (i + e))),
        1 => (1_000u64..6_000, 0u64..8_000).prop_map(|(idle, extra)| (idle, idle + extra)),
    ]
}

fn per_user(max: usize) -> impl Strategy<Value = Option<usize>> {
    prop_oneof![Just(None), (1usize..=3).prop_map(move |n| Some(n.min(max)))]
}

fn small_one_shard() -> impl Strategy<Value = HarnessConfig> {
    (timeouts(), 1usize..=8)
        .prop_flat_map(|(t, max)| (Just(t), Just(max), per_user(max)))
        .prop_map(
            |((idle_ms, absolute_ms), max_sessions, max_per_user)| HarnessConfig {
                shards: 1,
                max_sessions,
                max_per_user,
                idle_ms,
                absolute_ms,
                grace_ms: 0,
            },
        )
}

fn with_grace() -> impl Strategy<Value = HarnessConfig> {
    (small_one_shard(), 1u64..6_000, any::<bool>()).prop_map(|(mut c, g, round)| {
        c.grace_ms = 1 + g % (c.idle_ms - 1);
        if round {
            c.grace_ms = (c.grace_ms / 250).max(1) * 250;
        }
        c
    })
}

fn many_shards() -> impl Strategy<Value = HarnessConfig> {
    (timeouts(), 1u32..=6, per_user(MAX_OPS), 0u64..3_000).prop_map(
        |((idle_ms, absolute_ms), shard_bits, max_per_user, g)| HarnessConfig {
            shards: 1 << shard_bits,
            max_sessions: MAX_OPS,
            max_per_user,
            idle_ms,
            absolute_ms,
            grace_ms: g % idle_ms,
        },
    )
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..300)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_model_one_shard_small_capacity(cfg in small_one_shard(), ops in ops()) {
        run(&cfg, &ops);
    }

    #[test]
    fn engine_agrees_with_model_with_rotation_grace(cfg in with_grace(), ops in ops()) {
        run(&cfg, &ops);
    }

    #[test]
    fn engine_agrees_with_model_many_shards(cfg in many_shards(), ops in ops()) {
        run(&cfg, &ops);
    }
}

/// The fuzz target's decoder reads every input; these hand-written ones
/// cover its configuration modes (and keep `run_bytes` from rotting when
/// the fuzz crate is not built).
#[test]
fn byte_decoder_runs_every_mode() {
    for mode in 0u8..4 {
        let mut input = vec![mode, 0x10, 0x03, 0x20, 0x05, 3, 1, 0x40, 0x00];
        // create, create, login #0, validate #1, advance, run_pending ...
        for chunk in [
            &[0u8, 1, 2, 3, 4, 5, 6, 7, 8][..],
            &[1, 9, 9, 9, 9, 9, 9, 9, 9],
            &[7, 0, 0, 0, 2],
            &[2, 0, 0, 1],
            &[12, 0xff, 0x0f],
            &[15],
            &[11, 2],
            &[9, 2],
        ] {
            input.extend_from_slice(chunk);
        }
        sesame::model::run_bytes(&input);
    }
    sesame::model::run_bytes(&[]);
}

/// A hand-written scenario the random runs rely on: the model predicts the
/// eviction victim (least recently seen of the ring's first eight).
#[test]
fn model_predicts_capacity_eviction() {
    let cfg = HarnessConfig {
        shards: 1,
        max_sessions: 3,
        max_per_user: None,
        idle_ms: 10_000,
        absolute_ms: 20_000,
        grace_ms: 0,
    };
    let issued = |n| TokenRef::Issued(n, Form::Str);
    run(
        &cfg,
        &[
            Op::Create(1),
            Op::Advance(10),
            Op::Create(2),
            Op::Advance(10),
            Op::Create(3),
            Op::Advance(10),
            Op::Validate(issued(0)), // #0 is now the most recently seen
            Op::Create(4),           // evicts #1
            Op::Get(issued(1)),
            Op::Get(issued(0)),
            Op::Login(issued(0), 1),
            Op::Login(issued(2), 1),
            Op::Login(issued(3), 1),
            Op::Create(5), // nothing anonymous left: Full
        ],
    );
}

/// A hand-written scenario random runs rarely reach: the per-user limit ends
/// the principal's oldest-*created* session, not the one that logged in
/// first.
#[test]
fn model_predicts_per_user_eviction_by_creation_order() {
    let cfg = HarnessConfig {
        shards: 1,
        max_sessions: 8,
        max_per_user: Some(2),
        idle_ms: 10_000,
        absolute_ms: 20_000,
        grace_ms: 0,
    };
    let back = |n| TokenRef::Issued(n, Form::Str);
    run(
        &cfg,
        &[
            Op::Create(1), // Y
            Op::Advance(10),
            Op::Create(2),         // X
            Op::Login(back(0), 1), // X logs in first
            Op::Login(back(2), 1), // then Y (created earlier)
            Op::Create(3),         // Z
            Op::Login(back(0), 1), // over the limit: Y, the oldest created, ends
            Op::SessionsOf(1),
            Op::Get(back(1)), // Y's login token: gone
            Op::Get(back(2)), // X's login token: still live
        ],
    );
}
