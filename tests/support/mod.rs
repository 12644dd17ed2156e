//! Shared by the HTTP tests: a server on an ephemeral loopback port and a
//! real HTTP client (reqwest, plain HTTP to 127.0.0.1 only) that handles
//! cookies by hand, so that tests see exactly what goes over the wire.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;

use axum::Router;
use reqwest::header::{CACHE_CONTROL, COOKIE, HeaderMap, HeaderValue, SET_COOKIE};
use reqwest::{Method, StatusCode};

/// The default session cookie's name.
pub const NAME: &str = "__Host-id";

/// Serves `router` on 127.0.0.1 at a port the OS picks; the server lives as
/// long as the test's runtime.
pub async fn serve(router: Router) -> Http {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind an ephemeral loopback port");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("server runs");
    });
    Http::new(addr)
}

/// A client bound to one server.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    base: String,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Http {
    /// A client for the server at `addr` (plain HTTP, no redirects followed,
    /// no proxy).
    pub fn new(addr: SocketAddr) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("client");
        Self {
            client,
            base: format!("http://{addr}"),
        }
    }

    /// A request to `path`, with the session cookie `token` if given.
    /// `http://host:port` of the server.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let rb = self.client.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => rb.header(COOKIE, format!("{NAME}={t}")),
            None => rb,
        }
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Reply {
        let response = rb.send().await.expect("request reaches the server");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body");
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(self.request(Method::GET, path, token)).await
    }

    /// A form `POST` (no `Origin`, as curl sends it).
    pub async fn post(&self, path: &str, token: Option<&str>, form: &str) -> Reply {
        let rb = self
            .request(Method::POST, path, token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned());
        self.send(rb).await
    }

    /// Logs in as `user` / `password` from an anonymous start; returns the
    /// session token.
    pub async fn login(&self, user: &str, password: &str) -> String {
        let r = self
            .post(
                "/login",
                None,
                &format!("username={user}&password={password}"),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{user} logs in");
        r.token().expect("login sets the session cookie")
    }
}

impl Reply {
    /// Every `Set-Cookie` value.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ASCII Set-Cookie").to_owned())
            .collect()
    }

    /// The session cookie's `Set-Cookie`, if any (there is at most one).
    pub fn session_cookie(&self) -> Option<String> {
        let mine: Vec<String> = self
            .set_cookies()
            .into_iter()
            .filter(|c| c.starts_with(&format!("{NAME}=")))
            .collect();
        assert!(mine.len() <= 1, "one session Set-Cookie at most: {mine:?}");
        mine.into_iter().next()
    }

    /// The token a `Set-Cookie` gives (not a clearing one).
    pub fn token(&self) -> Option<String> {
        let c = self.session_cookie()?;
        let value = c[NAME.len() + 1..].split(';').next().unwrap_or("");
        (!value.is_empty()).then(|| value.to_owned())
    }

    /// Whether the response clears the session cookie.
    pub fn clears(&self) -> bool {
        self.session_cookie()
            .is_some_and(|c| c.starts_with(&format!("{NAME}=;")) && c.contains("; Max-Age=0"))
    }

    pub fn no_store(&self) -> bool {
        self.headers.get(CACHE_CONTROL) == Some(&HeaderValue::from_static("no-store"))
    }

    pub fn location(&self) -> Option<&str> {
        self.headers
            .get("location")
            .map(|v| v.to_str().expect("ASCII"))
    }

    /// The visit count on the demo's `/` page.
    pub fn visits(&self) -> u64 {
        let start = self
            .body
            .find("id=\"visits\">")
            .expect("visit count on the page")
            + 12;
        let end = start + self.body[start..].find('<').expect("end of count");
        self.body[start..end].parse().expect("a number")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

/// A log sink: install it as the test binary's global tracing subscriber,
/// then read what was logged.
#[derive(Clone, Default)]
pub struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("UTF-8 log")
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
