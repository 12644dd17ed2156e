//! Device recording through the tower layer (at creation and login, from
//! the connection or a trusted proxy header, only when configured), the
//! handle's `logout_others`, and the `Store` trait's default
//! `logout_others` for stores that do not provide their own.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::post;
use sesame::axum::SessionRouterExt as _;
use sesame::device::{ClientAddress, DeviceConfig};
use sesame::store::Store;
use sesame::tower::{Session, SessionLayer};
use sesame::{Error, ErrorKind, Handle, SessionInfo, SessionToken, Sessions};
use tower::ServiceExt as _;

async fn visit(s: Session<u32>) -> Result<(), Error> {
    s.update(|n| *n += 1).await
}

async fn login(s: Session<u32>) -> Result<(), Error> {
    s.login("alice".to_owned()).await
}

async fn others(s: Session<u32>) -> Result<String, Error> {
    Ok(s.logout_others().await?.to_string())
}

fn app(sessions: &Sessions<u32>, devices: Option<DeviceConfig>) -> Router {
    let layer = SessionLayer::new(sessions.clone());
    let layer = match devices {
        Some(d) => layer.record_devices(d),
        None => layer,
    };
    Router::new()
        .route("/visit", post(visit))
        .route("/login", post(login))
        .route("/others", post(others))
        .session_layer(layer)
        .with_state(sessions.clone())
}

/// Sends a `POST` from `peer` with these headers; returns the status, the
/// body and the new token if one was set.
async fn send(
    app: &Router,
    path: &str,
    token: Option<&str>,
    peer: [u8; 4],
    headers: &[(&str, &str)],
) -> (StatusCode, String, Option<String>) {
    let mut rb = Request::post(path);
    if let Some(t) = token {
        rb = rb.header(header::COOKIE, format!("__Host-id={t}"));
    }
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let mut req = rb.body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(SocketAddr::from((peer, 40_000)));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let token = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.strip_prefix("__Host-id="))
        .and_then(|c| c.split(';').next())
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let body = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned(), token)
}

#[tokio::test]
async fn the_layer_records_at_creation_and_login_only_when_configured() {
    let sessions = Sessions::<u32>::new();
    // Off (the default): nothing recorded.
    let plain = app(&sessions, None);
    let (_, _, t) = send(
        &plain,
        "/login",
        None,
        [192, 0, 2, 1],
        &[("user-agent", "A/1")],
    )
    .await;
    assert_eq!(sessions.device(t.as_deref().unwrap()), None);
    assert_eq!(sessions.device_slots(), 0);

    // On: recorded when the first write creates the session...
    let recording = app(&sessions, Some(DeviceConfig::new().max_user_agent(8)));
    let (_, _, t) = send(
        &recording,
        "/visit",
        None,
        [192, 0, 2, 2],
        &[("user-agent", "Anonymous/1.0")],
    )
    .await;
    let t = t.unwrap();
    let d = sessions.device(&t).unwrap();
    assert_eq!(d.user_agent.as_deref(), Some("Anonymou"), "cut to 8 bytes");
    assert_eq!(d.address, Some(IpAddr::from([192, 0, 2, 2])));
    // ...not on a later request that changes nothing about the session...
    send(
        &recording,
        "/visit",
        Some(&t),
        [192, 0, 2, 3],
        &[("user-agent", "Other/2")],
    )
    .await;
    let d = sessions.device(&t).unwrap();
    assert_eq!(d.address, Some(IpAddr::from([192, 0, 2, 2])));
    // ...and again at login (another network, another browser version).
    let (_, _, t) = send(
        &recording,
        "/login",
        Some(&t),
        [198, 51, 100, 4],
        &[("user-agent", "Login/3")],
    )
    .await;
    let listed = sessions.sessions_of(&"alice".to_owned());
    let d = listed
        .iter()
        .find(|i| Some(i.handle) == sessions.validate(t.as_deref().unwrap()))
        .and_then(|i| i.device.clone())
        .unwrap();
    assert_eq!(d.user_agent.as_deref(), Some("Login/3"));
    assert_eq!(d.address, Some(IpAddr::from([198, 51, 100, 4])));
}

#[tokio::test]
async fn a_proxy_header_is_read_only_as_far_as_configured() {
    let sessions = Sessions::<u32>::new();
    let hostile = [
        ("x-forwarded-for", "6.6.6.6, 203.0.113.5"),
        ("forwarded", "for=6.6.6.6"),
    ];
    // Not configured: the header is ignored, the peer is the address.
    let direct = app(&sessions, Some(DeviceConfig::new()));
    let (_, _, t) = send(&direct, "/visit", None, [192, 0, 2, 9], &hostile).await;
    let d = sessions.device(&t.unwrap()).unwrap();
    assert_eq!(d.address, Some(IpAddr::from([192, 0, 2, 9])));
    // One trusted proxy: the entry it appended, not the client's.
    let config =
        DeviceConfig::new().client_address(ClientAddress::XForwardedFor { trusted_hops: 1 });
    let proxied = app(&sessions, Some(config));
    let (_, _, t) = send(&proxied, "/visit", None, [10, 0, 0, 1], &hostile).await;
    let d = sessions.device(&t.unwrap()).unwrap();
    assert_eq!(d.address, Some(IpAddr::from([203, 0, 113, 5])));
    // Garbage in the trusted position: unknown, and the request goes on.
    let garbage = [("x-forwarded-for", "203.0.113.5,\t%zz\"\\, [::1")];
    let (status, _, t) = send(&proxied, "/visit", None, [10, 0, 0, 1], &garbage).await;
    assert_eq!(status, StatusCode::OK);
    let d = sessions.device(&t.unwrap());
    assert_eq!(d.and_then(|d| d.address), None);
}

#[tokio::test]
async fn the_handle_signs_out_of_other_devices() {
    let sessions = Sessions::<u32>::new();
    let app = app(&sessions, Some(DeviceConfig::new()));
    let (_, _, phone) = send(&app, "/login", None, [192, 0, 2, 1], &[]).await;
    let (_, _, laptop) = send(&app, "/login", None, [192, 0, 2, 2], &[]).await;
    let (phone, laptop) = (phone.unwrap(), laptop.unwrap());
    let (status, body, cookie) = send(&app, "/others", Some(&laptop), [192, 0, 2, 2], &[]).await;
    assert_eq!((status, body.as_str(), cookie), (StatusCode::OK, "1", None));
    assert!(sessions.validate(&phone).is_none());
    assert!(sessions.validate(&laptop).is_some());
    // Without a session, or with a dead one: nothing to end.
    let (_, body, _) = send(&app, "/others", None, [192, 0, 2, 2], &[]).await;
    assert_eq!(body, "0");
    let (_, body, _) = send(&app, "/others", Some(&phone), [192, 0, 2, 2], &[]).await;
    assert_eq!(body, "0");
    assert_eq!(sessions.device_slots(), 1);
}

/// A store that provides neither `set_device` nor `logout_others`: the
/// trait's defaults (drop the device; compose `info`, `sessions_of` and
/// `revoke`).
#[derive(Clone)]
struct Plain(Sessions<u32>);

impl Store for Plain {
    type Data = u32;
    type Principal = String;

    async fn validate(&self, token: &SessionToken) -> Result<Option<Handle>, Error> {
        Store::validate(&self.0, token).await
    }
    async fn is_current(&self, token: &SessionToken) -> Result<bool, Error> {
        Store::is_current(&self.0, token).await
    }
    async fn info(&self, token: &SessionToken) -> Result<Option<SessionInfo<String>>, Error> {
        Store::info(&self.0, token).await
    }
    async fn with<R: Send, F: FnOnce(&u32) -> R + Send>(
        &self,
        token: &SessionToken,
        f: F,
    ) -> Result<Option<R>, Error> {
        Store::with(&self.0, token, f).await
    }
    async fn update<R: Send, F: FnMut(&mut u32) -> R + Send>(
        &self,
        token: &SessionToken,
        f: F,
    ) -> Result<R, Error> {
        Store::update(&self.0, token, f).await
    }
    async fn create(&self, data: u32) -> Result<SessionToken, Error> {
        Store::create(&self.0, data).await
    }
    async fn rotate(&self, token: &SessionToken) -> Result<SessionToken, Error> {
        Store::rotate(&self.0, token).await
    }
    async fn login(&self, token: &SessionToken, principal: String) -> Result<SessionToken, Error> {
        Store::login(&self.0, token, principal).await
    }
    async fn logout(&self, token: &SessionToken) -> Result<bool, Error> {
        Store::logout(&self.0, token).await
    }
    async fn revoke_user(&self, principal: &String) -> Result<usize, Error> {
        Store::revoke_user(&self.0, principal).await
    }
    async fn revoke(&self, principal: &String, handle: Handle) -> Result<bool, Error> {
        Store::revoke(&self.0, principal, handle).await
    }
    async fn sessions_of(&self, principal: &String) -> Result<Vec<SessionInfo<String>>, Error> {
        Store::sessions_of(&self.0, principal).await
    }
    async fn stats(&self) -> Result<sesame::Stats, Error> {
        Store::stats(&self.0).await
    }
    fn subscribe(&self, capacity: usize) -> sesame::events::Receiver<sesame::Event<String>> {
        Store::subscribe(&self.0, capacity)
    }
}

#[tokio::test]
async fn the_trait_defaults_work_for_other_stores() {
    let engine = Sessions::<u32>::new();
    let store = Plain(engine.clone());
    let alice = "alice".to_owned();
    let mut mine = Vec::new();
    for _ in 0..3 {
        let t = store.create(0).await.unwrap();
        mine.push(store.login(&t, alice.clone()).await.unwrap());
    }
    let t = store.create(0).await.unwrap();
    let bob = store.login(&t, "bob".to_owned()).await.unwrap();
    let anon = store.create(0).await.unwrap();

    // The default drops the device.
    store
        .set_device(&mine[0], sesame::Device::new().with_user_agent("A", 8))
        .await
        .unwrap();
    assert_eq!(engine.device_slots(), 0);
    // The default logout_others: the same answers as the engine's own.
    assert_eq!(store.logout_others(&anon).await.unwrap(), 0);
    let dead = store.create(0).await.unwrap();
    store.logout(&dead).await.unwrap();
    let err = store.logout_others(&dead).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(store.logout_others(&mine[1]).await.unwrap(), 2);
    for (i, t) in mine.iter().enumerate() {
        assert_eq!(engine.validate(t).is_some(), i == 1, "session {i}");
    }
    assert!(engine.validate(&bob).is_some() && engine.validate(&anon).is_some());
}
