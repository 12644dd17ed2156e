//! The key file without the `snapshot` feature: `SecretKey::load_or_create`
//! (item 5 of issue 12). A server that shares sessions through Redis needs
//! the same key on every node and a restart, and no snapshot at all.

use sesame::SecretKey;
use sesame::key::KeyFileErrorKind;

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sesame-keyfile-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_key_is_created_once_then_read_back() {
    let dir = TempDir::new("roundtrip");
    let path = dir.0.join("session.key");
    let key = SecretKey::load_or_create(&path).unwrap();
    assert_eq!(SecretKey::load_or_create(&path).unwrap(), key);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 64);
    assert_ne!(
        key,
        SecretKey::load_or_create(dir.0.join("other.key")).unwrap()
    );
}

#[cfg(unix)]
#[test]
fn an_exposed_key_file_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("exposed");
    let path = dir.0.join("session.key");
    SecretKey::load_or_create(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let e = SecretKey::load_or_create(&path).unwrap_err();
    assert_eq!(e.kind(), KeyFileErrorKind::Insecure);
    assert!(e.to_string().contains("0600"), "{e}");
}

#[cfg(unix)]
#[test]
fn a_malformed_key_file_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("malformed");
    let path = dir.0.join("session.key");
    std::fs::write(&path, "not a key\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = SecretKey::load_or_create(&path).unwrap_err();
    assert_eq!(e.kind(), KeyFileErrorKind::Malformed);
}
