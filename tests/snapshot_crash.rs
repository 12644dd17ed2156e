//! A process saving snapshots in a loop through a `SnapshotStore` is killed
//! with SIGKILL at random moments; after each kill the store loads, and
//! holds either the last snapshot the child reported complete or the one it
//! was writing, whole: never an error (not even when the kill fell between
//! the state file's new generation and the rename: the store rolls the
//! complete new file forward), never a mix of two, and no temporary file is
//! left.
//!
//! The test binary is its own child: run with `SESAME_CRASH_CHILD=<path>`
//! it saves in a loop instead (hence `harness = false`).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::Rng as _;
use sesame::snapshot::SnapshotStore;
use sesame::{SecretKey, Sessions};

const CHILD: &str = "SESAME_CRASH_CHILD";
const START: &str = "SESAME_CRASH_START";
const KILLS: usize = 20;
/// Sessions per snapshot.
const N: usize = 2_000;

/// Data and principal are both the generation a session was last written
/// in: a snapshot of generation g holds N sessions of principal g.
type Engine = Sessions<u64, u64>;

fn engine() -> Engine {
    Sessions::builder()
        .secret_key(SecretKey::from_bytes([0xC7; 32]))
        .unlimited_sessions_per_user() // every session logs in as one generation
        .reaper_interval(None)
        .build()
        .expect("valid config")
}

/// Child: creates N sessions, then for each generation logs every session
/// in again as that generation (rotating its token), stores it in the data,
/// saves and reports the generation. Runs until killed.
fn child(path: &Path, start: u64) -> ! {
    let s = engine();
    let store = SnapshotStore::open(&s, path, state_of(path)).expect("store");
    let mut tokens: Vec<_> = (0..N).map(|_| s.create(0).expect("room").0).collect();
    let mut out = std::io::stdout().lock();
    for generation in start.. {
        for t in &mut tokens {
            *t = s.login(&*t, generation).expect("live");
            s.update(&*t, |d| *d = generation).expect("live");
        }
        store.save().expect("save");
        use std::io::Write as _;
        writeln!(out, "{generation}").expect("stdout");
        out.flush().expect("stdout");
    }
    unreachable!("generations do not run out")
}

/// The store's state file (in a real deployment: beside the key file).
fn state_of(path: &Path) -> PathBuf {
    path.with_extension("state")
}

/// The generation in a snapshot file's header.
fn header_generation(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    Some(u64::from_le_bytes(bytes.get(48..56)?.try_into().ok()?))
}

/// The generation a snapshot file holds, checking it is whole and pure,
/// and whether the store rolled a complete new file forward to get it.
fn loaded_generation(path: &Path, candidates: &[u64]) -> Option<(u64, bool)> {
    let s = engine();
    let store = SnapshotStore::open(&s, path, state_of(path)).expect("state file opens");
    let rolled = header_generation(path).is_some_and(|g| g < store.generation());
    match store.load() {
        Err(e) => panic!("snapshot after SIGKILL does not load: {e}"),
        Ok(None) => return None,
        Ok(Some(r)) => assert_eq!(r.restored, N, "snapshot lost sessions"),
    }
    let found: Vec<u64> = candidates
        .iter()
        .copied()
        .filter(|g| !s.sessions_of(g).is_empty())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one of {candidates:?}, found {found:?}"
    );
    assert_eq!(s.sessions_of(&found[0]).len(), N, "a mix of generations");
    Some((found[0], rolled))
}

/// The child saves until killed: if the parent fails first (an assertion,
/// a timeout), this kills it, which also ends the thread reading its output.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn parent() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "sesame-crash-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("sessions.snap");
    let exe = std::env::current_exe().expect("own path");
    let mut rng = rand::rng();
    // The generation in the file after the previous kill (0: no file yet).
    let mut on_disk = 0u64;
    let mut mid_save = 0;
    let mut rolled_forward = 0;
    for kill in 0..KILLS {
        let start = on_disk + 1;
        let mut child = KillOnDrop(
            Command::new(&exe)
                .env(CHILD, &path)
                .env(START, start.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn child"),
        );
        let stdout = child.0.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(g) = line.trim().parse() else { break };
                if tx.send(g).is_err() {
                    break;
                }
            }
        });
        // Let it complete two saves, timing a cycle (logins and a save),
        // then kill it at a random moment within the next two cycles.
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child saved nothing");
        assert_eq!(first, start);
        let t = Instant::now();
        let second = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child saved once only");
        let cycle = t.elapsed().as_micros().max(1) as u64;
        std::thread::sleep(Duration::from_micros(rng.random_range(0..2 * cycle)));
        child.0.kill().expect("SIGKILL");
        child.0.wait().expect("reap child");
        reader.join().expect("reader");
        let last = rx.try_iter().fold(second, u64::max);
        let (g, rolled) =
            loaded_generation(&path, &[last, last + 1]).expect("file exists after a save");
        if g == last + 1 {
            mid_save += 1; // renamed (or rolled forward), killed before it could report
        }
        rolled_forward += usize::from(rolled);
        assert!(g >= on_disk, "kill {kill}: went back from {on_disk} to {g}");
        on_disk = g;
        // The load removed what a killed save left.
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["sessions.snap", "sessions.state"], "kill {kill}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::remove_dir_all(&dir).is_err() && Instant::now() < deadline {}
    println!(
        "test sigkill_during_saves_leaves_old_or_new_snapshot ... ok \
         ({KILLS} kills, {on_disk} generations, {mid_save} caught between commit and report, \
         {rolled_forward} rolled forward)"
    );
}

fn main() {
    if let Some(path) = std::env::var_os(CHILD) {
        let start = std::env::var(START)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        child(Path::new(&path), start);
    }
    parent();
}
