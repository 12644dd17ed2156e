//! Tokens never repeat across `fork`: a pre-forking server's parent and
//! child draw different tokens and handles, and a session the child creates
//! does not validate in the parent.
//!
//! Regression: rand 0.9's thread-local generator is not reseeded on fork,
//! so both processes went on from the same ChaCha state and drew the same
//! tokens; a session created in the child was a valid token for the session
//! the parent created next.
//!
//! `fork` in a multithreaded process leaves the child with one thread and
//! whatever locks the others held, so this binary runs without the test
//! harness (`harness = false`): `main` is the only thread, and the engine
//! runs no reaper thread.

#[cfg(unix)]
mod unix {
    use std::collections::HashSet;
    use std::io::{Read as _, Write as _};
    use std::os::fd::{FromRawFd as _, OwnedFd};

    use sesame::{Handle, SessionToken, Sessions};

    /// Tokens each process draws after the fork, and sessions it creates.
    const N: usize = 256;

    /// What a process draws after the fork: raw tokens, the tokens of the
    /// sessions it creates, and their handles.
    struct Draws {
        tokens: Vec<[u8; 32]>,
        sessions: Vec<[u8; 32]>,
        handles: Vec<u64>,
    }

    impl Draws {
        fn draw(s: &Sessions<u32>) -> Self {
            let tokens = (0..N)
                .map(|_| *SessionToken::generate().as_bytes())
                .collect();
            let (mut sessions, mut handles) = (Vec::new(), Vec::new());
            for i in 0..N as u32 {
                let (t, h) = s.create(i).expect("room");
                sessions.push(*t.as_bytes());
                handles.push(h.as_u64());
            }
            Self {
                tokens,
                sessions,
                handles,
            }
        }

        fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            for t in self.tokens.iter().chain(&self.sessions) {
                out.extend_from_slice(t);
            }
            for h in &self.handles {
                out.extend_from_slice(&h.to_le_bytes());
            }
            out
        }

        fn decode(bytes: &[u8]) -> Self {
            assert_eq!(bytes.len(), N * (32 + 32 + 8), "child sent a whole report");
            let (tokens, rest) = bytes.split_at(N * 32);
            let (sessions, handles) = rest.split_at(N * 32);
            let arr = |c: &[u8]| -> [u8; 32] { c.try_into().expect("32 bytes") };
            Self {
                tokens: tokens.chunks(32).map(arr).collect(),
                sessions: sessions.chunks(32).map(arr).collect(),
                handles: handles
                    .chunks(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            }
        }
    }

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe(2) to fill.
        let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
        assert_eq!(rc, 0, "pipe: {}", std::io::Error::last_os_error());
        // SAFETY: pipe(2) succeeded, so both descriptors are open and ours.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    pub fn child_and_parent_never_share_tokens() {
        let s = Sessions::<u32>::builder()
            .reaper_interval(None)
            .build()
            .expect("valid config");
        // Warm up this thread's generator (and the engine) before the fork,
        // as a server does before it forks its workers.
        for i in 0..100 {
            let _ = SessionToken::generate();
            s.create(i).expect("room");
        }

        let (read, write) = pipe();
        // SAFETY: this process has one thread (no harness, no reaper), so
        // the child may run ordinary Rust code; it leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            drop(read);
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let report = Draws::draw(&s).encode();
                std::fs::File::from(write)
                    .write_all(&report)
                    .expect("write to the parent");
            }))
            .is_ok();
            // SAFETY: `_exit` ends the child without running the parent's
            // exit handlers or destructors a second time.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        drop(write);
        let mine = Draws::draw(&s);
        let mut bytes = Vec::new();
        std::fs::File::from(read)
            .read_to_end(&mut bytes)
            .expect("read the child's report");
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid int to fill.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid, "waitpid");
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child failed: status {status}"
        );
        let theirs = Draws::decode(&bytes);

        let parent_tokens: HashSet<[u8; 32]> =
            mine.tokens.iter().chain(&mine.sessions).copied().collect();
        let shared_tokens = theirs
            .tokens
            .iter()
            .chain(&theirs.sessions)
            .filter(|t| parent_tokens.contains(*t))
            .count();
        let parent_handles: HashSet<u64> = mine.handles.iter().copied().collect();
        let shared_handles = theirs
            .handles
            .iter()
            .filter(|h| parent_handles.contains(h))
            .count();
        // The child's sessions are the child's: none of its tokens opens a
        // session in the parent's engine (its copy of the engine from
        // before the fork).
        let valid_in_parent = theirs
            .sessions
            .iter()
            .filter(|t| {
                s.validate(&SessionToken::from_bytes_for_tests(**t))
                    .is_some()
            })
            .count();
        assert_eq!(
            (shared_tokens, shared_handles, valid_in_parent),
            (0, 0, 0),
            "after fork: (tokens drawn by both processes, of {}; handles drawn by both, \
             of {N}; child's session tokens valid in the parent, of {N})",
            2 * N
        );
        // And the parent's own sessions still do (the check above can fail).
        for (t, h) in mine.sessions.iter().zip(&mine.handles) {
            assert_eq!(
                s.validate(&SessionToken::from_bytes_for_tests(*t)),
                Some(Handle::from_u64(*h))
            );
        }
    }
}

fn main() {
    #[cfg(unix)]
    {
        unix::child_and_parent_never_share_tokens();
        println!("test child_and_parent_never_share_tokens ... ok");
        println!("1 passed, 0 failed");
    }
}
