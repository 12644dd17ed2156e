//! Device lists on the Redis backend: each session's device listed by
//! `sessions_of`, and `logout_others` ending every other session of the
//! principal on every server, against a real `redis-server`.

mod redis_support;

use std::net::IpAddr;
use std::time::Duration;

use redis_support::{RedisServer, eventually_async};
use sesame::redis::RedisSessions;
use sesame::{Device, ErrorKind, SecretKey};

async fn store(server: &RedisServer, key: &SecretKey) -> RedisSessions<Vec<u32>, String> {
    let s = RedisSessions::builder(&server.url())
        .secret_key(key.clone())
        .build()
        .expect("valid options");
    assert!(s.wait_ready(Duration::from_secs(5)).await, "subscribed");
    s
}

fn device(agent: &str, ip: [u8; 4]) -> Device {
    Device::new()
        .with_user_agent(agent, 256)
        .with_address(IpAddr::from(ip))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_listed_and_logout_others_ends_the_rest_everywhere() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = SecretKey::generate();
    let (a, b) = (store(&server, &key).await, store(&server, &key).await);
    let alice = "alice".to_string();

    // Alice on her phone (server A) and her laptop (server B); bob elsewhere.
    let (phone, h_phone) = a.create(vec![1]).await.unwrap();
    a.set_device(&phone, device("Phone/1.0", [198, 51, 100, 7]))
        .await
        .unwrap();
    let phone = a.login(&phone, alice.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await; // distinct creation times
    let (laptop, h_laptop) = b.create(vec![2]).await.unwrap();
    let laptop = b.login(&laptop, alice.clone()).await.unwrap();
    b.set_device(&laptop, device("Laptop/2.0", [203, 0, 113, 9]))
        .await
        .unwrap();
    let (bob, _) = a.create(Vec::new()).await.unwrap();
    let bob = a.login(&bob, "bob".to_string()).await.unwrap();
    a.set_device(&bob, device("Bob/1.0", [192, 0, 2, 1]))
        .await
        .unwrap();
    let (anon, _) = a.create(Vec::new()).await.unwrap();

    // Listed from either server, each with its own device (the phone's
    // was recorded before login and moved with the session).
    for s in [&a, &b] {
        let listed: Vec<_> = s
            .sessions_of(&alice)
            .await
            .unwrap()
            .into_iter()
            .map(|i| {
                let d = i.device.expect("a device");
                (i.handle, d.user_agent, d.address)
            })
            .collect();
        assert_eq!(
            listed,
            [
                (
                    h_phone,
                    Some("Phone/1.0".into()),
                    Some(IpAddr::from([198, 51, 100, 7]))
                ),
                (
                    h_laptop,
                    Some("Laptop/2.0".into()),
                    Some(IpAddr::from([203, 0, 113, 9]))
                ),
            ]
        );
    }
    // Server A holds a cached copy of the phone's session.
    assert!(a.validate(&phone).await.unwrap().is_some());

    // Anonymous: nothing to end. Dead or malformed tokens: NotFound.
    assert_eq!(b.logout_others(&anon).await.unwrap(), 0);
    assert_eq!(
        b.logout_others("garbage").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let (gone, _) = b.create(Vec::new()).await.unwrap();
    b.logout(&gone).await.unwrap();
    assert_eq!(
        b.logout_others(&gone).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        b.set_device(&gone, device("X", [192, 0, 2, 2]))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );

    // "Sign out of all other devices" from the laptop, on server B.
    assert_eq!(b.logout_others(&laptop).await.unwrap(), 1);
    assert_eq!(b.validate(&phone).await.unwrap(), None);
    assert_eq!(b.validate(&laptop).await.unwrap(), Some(h_laptop));
    // Server A drops its copy within the invalidation bound.
    let dropped = eventually_async(Duration::from_secs(1), async || {
        a.validate(&phone).await.unwrap().is_none()
    })
    .await;
    assert!(
        dropped.is_some(),
        "server A still serves the phone's session"
    );
    let listed = a.sessions_of(&alice).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle, h_laptop);
    // Bob and the anonymous session are untouched.
    assert!(a.validate(&bob).await.unwrap().is_some());
    assert!(a.validate(&anon).await.unwrap().is_some());
    let bobs = a.sessions_of(&"bob".to_string()).await.unwrap();
    let bob_agent = bobs[0].device.as_ref().and_then(|d| d.user_agent.clone());
    assert_eq!(bob_agent.as_deref(), Some("Bob/1.0"));
    assert_eq!(b.logout_others(&laptop).await.unwrap(), 0, "nothing left");

    // The device lives in the session's hash: gone with it.
    let mut conn = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    let with_device = keys
        .iter()
        .filter(|k| {
            redis::cmd("HEXISTS")
                .arg(k.as_str())
                .arg("ua")
                .query::<bool>(&mut conn)
                .unwrap_or(false)
        })
        .count();
    assert_eq!(with_device, 2, "the laptop's and bob's: {keys:?}");
}
