//! The cache-line table prototypes of `benches/proto` (issue 15) keep
//! working while they live behind the benches: their probing agrees with a
//! `HashMap`, and each store answers as a session store must.

#[path = "../benches/common/mod.rs"]
mod common;
#[path = "../benches/proto/mod.rs"]
mod proto;

use common::Store;
use proto::{FpLineTable, HashTableLines, LineTable};

#[test]
fn own_tables_agree_with_a_hashmap() {
    proto::self_check();
}

/// Create, hit, miss, rotate, login, logout, through growth past the
/// initial capacity and past tombstones.
fn behaves_as_a_session_store<S: Store>() {
    let s = S::with_capacity(64);
    let tokens: Vec<String> = (0..5_000).map(|_| s.create()).collect();
    for t in &tokens {
        assert!(
            s.validate(t).is_some(),
            "{}: a live token validates",
            S::NAME
        );
    }
    assert!(s.validate(common::MALFORMED).is_none());
    for t in common::unknown_tokens(100) {
        assert!(
            s.validate(&t).is_none(),
            "{}: an unknown token misses",
            S::NAME
        );
    }
    let (gone, kept) = tokens.split_at(2_500);
    for t in gone {
        assert!(s.logout(t));
        assert!(!s.logout(t), "{}: a session ends once", S::NAME);
        assert!(s.validate(t).is_none());
    }
    for t in kept {
        let handle = s.validate(t);
        let new = s.rotate(t).expect("live");
        assert!(s.validate(t).is_none(), "{}: the old token stops", S::NAME);
        assert_eq!(s.validate(&new), handle, "{}: same session", S::NAME);
        assert!(s.update(&new));
        let logged_in = s.login(&new, 7).expect("live");
        assert_eq!(s.validate(&logged_in), handle);
        assert!(s.validate(&new).is_none());
    }
}

#[test]
fn line_behaves_as_a_session_store() {
    behaves_as_a_session_store::<LineTable>();
}

#[test]
fn htable_behaves_as_a_session_store() {
    behaves_as_a_session_store::<HashTableLines>();
}

#[test]
fn fpline_behaves_as_a_session_store() {
    behaves_as_a_session_store::<FpLineTable>();
}

#[test]
fn fpline_sweep_expires_only_what_is_due() {
    let s = FpLineTable::with_capacity(1_000);
    let tokens: Vec<String> = (0..1_000).map(|_| s.create()).collect();
    assert_eq!(s.sweep(s.now()), 0, "nothing is due yet");
    assert!(tokens.iter().all(|t| s.validate(t).is_some()));
    assert_eq!(s.sweep(s.now() + s.idle_ms() + 1), 1_000);
    assert!(tokens.iter().all(|t| s.validate(t).is_none()));
    assert_eq!(s.sweep(u64::MAX), 0, "swept once");
}
