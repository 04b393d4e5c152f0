//! One HTTP/1.1 attempt over hyper: connect (directly or to a proxy, TLS where the URL
//! says https), send the GET, stream the body to a consumer with the connect timeout
//! and upstream's low-speed rule, and classify every failure the way upstream does
//! (spec 2.5). Connections are kept alive and reused per endpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::chain::Proxy;

/// Why one attempt failed, in upstream's classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    ProxyResolve(String),
    HostResolve(String),
    ProxyConnect(String),
    HostConnect(String),
    ProxyTooSlow(String),
    HostTooSlow(String),
    ProxyShort(String),
    HostShort(String),
    ProxyHttp(u16),
    HostHttp(u16),
    /// The bytes failed the hash or zlib check.
    BadData(String),
    /// Writing to the local sink failed: not the network's fault, not retried.
    LocalIo(String),
    /// Not retried (unsupported URL and the like).
    Other(String),
}

impl Failure {
    /// Connection, too-slow and short-transfer errors: the ones retried on the same path.
    pub fn is_transfer(&self) -> bool {
        matches!(
            self,
            Failure::ProxyConnect(_)
                | Failure::HostConnect(_)
                | Failure::ProxyTooSlow(_)
                | Failure::HostTooSlow(_)
                | Failure::ProxyShort(_)
                | Failure::HostShort(_)
        )
    }

    pub fn is_proxy_side(&self) -> bool {
        matches!(
            self,
            Failure::ProxyResolve(_)
                | Failure::ProxyConnect(_)
                | Failure::ProxyTooSlow(_)
                | Failure::ProxyShort(_)
                | Failure::ProxyHttp(_)
        )
    }

    pub fn is_host_side(&self) -> bool {
        matches!(
            self,
            Failure::HostResolve(_)
                | Failure::HostConnect(_)
                | Failure::HostTooSlow(_)
                | Failure::HostShort(_)
                | Failure::HostHttp(_)
                | Failure::BadData(_)
        )
    }

    pub fn describe(&self) -> String {
        match self {
            Failure::ProxyResolve(m) => format!("proxy name does not resolve ({m})"),
            Failure::HostResolve(m) => format!("host name does not resolve ({m})"),
            Failure::ProxyConnect(m) => format!("cannot connect to the proxy ({m})"),
            Failure::HostConnect(m) => format!("cannot connect to the host ({m})"),
            Failure::ProxyTooSlow(m) | Failure::HostTooSlow(m) => format!("too slow: {m}"),
            Failure::ProxyShort(m) | Failure::HostShort(m) => format!("transfer broke off ({m})"),
            Failure::ProxyHttp(code) => format!("HTTP {code} from the proxy"),
            Failure::HostHttp(code) => format!("HTTP {code}"),
            Failure::BadData(m) => format!("bad data ({m})"),
            Failure::LocalIo(m) => format!("local I/O error ({m})"),
            Failure::Other(m) => m.clone(),
        }
    }
}

/// What the body consumer reports back.
pub enum ConsumeError {
    BadData(String),
    LocalIo(String),
}

/// Timing rules of an attempt.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Connect timeout and low-speed window; zero = none.
    pub timeout: Duration,
    /// Bytes per second below which a transfer is aborted after `timeout`.
    pub low_speed_limit: u64,
}

/// Keep-alive connections per endpoint.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<SendRequest<Empty<Bytes>>>>>,
}

impl Pool {
    fn take(&self, key: &str) -> Option<SendRequest<Empty<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(key)?;
        while let Some(sender) = list.pop() {
            if !sender.is_closed() && sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn give_back(&self, key: String, sender: SendRequest<Empty<Bytes>>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(key).or_default();
        if list.len() < 16 {
            list.push(sender);
        }
    }
}

/// Parts of an `http(s)://authority/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(text: &str) -> Option<Url> {
        let (https, rest) = if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            (true, text.strip_prefix("https://")?)
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = split_authority(authority, if https { 443 } else { 80 })?;
        Some(Url { https, host, port, path: path.to_string() })
    }

    pub fn authority(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    pub fn to_text(&self) -> String {
        format!("{}://{}{}", if self.https { "https" } else { "http" }, self.authority(), self.path)
    }
}

fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if authority.is_empty() {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), default_port)),
    }
}

/// Shared pieces an attempt needs.
pub struct Client {
    pub pool: Pool,
    pub tls: Arc<rustls::ClientConfig>,
    pub user_agent: String,
}

/// An established request channel and how to give it back.
struct Channel {
    sender: SendRequest<Empty<Bytes>>,
    key: String,
}

impl Client {
    /// Fetches `url` through `proxy`, handing each body piece to `consume`. Returns the
    /// number of body bytes.
    pub async fn get(
        &self,
        url: &str,
        proxy: &Proxy,
        no_cache: bool,
        timing: Timing,
        consume: &mut dyn FnMut(&[u8]) -> Result<(), ConsumeError>,
    ) -> Result<u64, Failure> {
        let target = Url::parse(url).ok_or_else(|| Failure::Other(format!("unsupported URL {url}")))?;
        let via = match &proxy.url {
            Some(p) => {
                Some(Url::parse(p).ok_or_else(|| Failure::ProxyConnect(format!("bad proxy URL {p}")))?)
            }
            None => None,
        };
        if via.is_some() && target.https {
            return Err(Failure::Other(format!(
                "{url}: https servers through an HTTP proxy are not supported"
            )));
        }
        let endpoint = via.clone().unwrap_or_else(|| target.clone());
        let mut channel = self.channel(&endpoint, via.is_some(), timing).await?;
        let uri = if via.is_some() { target.to_text() } else { target.path.clone() };
        let mut request = hyper::Request::get(uri)
            .header("Host", target.authority())
            .header("User-Agent", &self.user_agent)
            .header("Connection", "Keep-Alive");
        request = if no_cache {
            request.header("Pragma", "no-cache").header("Cache-Control", "no-cache")
        } else {
            request.header("Pragma", "")
        };
        let request = request.body(Empty::new()).map_err(|e| Failure::Other(e.to_string()))?;
        let on_proxy = via.is_some();
        let short = |m: String| if on_proxy { Failure::ProxyShort(m) } else { Failure::HostShort(m) };
        let slow = |m: String| if on_proxy { Failure::ProxyTooSlow(m) } else { Failure::HostTooSlow(m) };
        let response = with_timeout(timing.timeout, channel.sender.send_request(request))
            .await
            .map_err(|()| slow(format!("no response within {:?}", timing.timeout)))?
            .map_err(|e| short(e.to_string()))?;
        classify_status(response.status().as_u16(), on_proxy)?;
        let mut body = response.into_body();
        let mut total = 0u64;
        let mut window_start = Instant::now();
        let mut window_bytes = 0u64;
        loop {
            let frame = with_timeout(timing.timeout, body.frame())
                .await
                .map_err(|()| slow(format!("no data for {:?}", timing.timeout)))?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| short(e.to_string()))?;
            let Ok(data) = frame.into_data() else { continue };
            total += data.len() as u64;
            window_bytes += data.len() as u64;
            consume(&data).map_err(|e| match e {
                ConsumeError::BadData(m) => Failure::BadData(m),
                ConsumeError::LocalIo(m) => Failure::LocalIo(m),
            })?;
            if !timing.timeout.is_zero() && window_start.elapsed() >= timing.timeout {
                let rate = window_bytes as f64 / window_start.elapsed().as_secs_f64();
                if rate < timing.low_speed_limit as f64 {
                    return Err(slow(format!(
                        "{rate:.0} B/s is below the low-speed limit of {} B/s",
                        timing.low_speed_limit
                    )));
                }
                window_start = Instant::now();
                window_bytes = 0;
            }
        }
        self.pool.give_back(channel.key.clone(), channel.sender);
        Ok(total)
    }

    async fn channel(&self, endpoint: &Url, is_proxy: bool, timing: Timing) -> Result<Channel, Failure> {
        let key = endpoint.to_text();
        if let Some(sender) = self.pool.take(&key) {
            return Ok(Channel { sender, key });
        }
        let connect_error =
            |m: String| if is_proxy { Failure::ProxyConnect(m) } else { Failure::HostConnect(m) };
        let resolve_error =
            |m: String| if is_proxy { Failure::ProxyResolve(m) } else { Failure::HostResolve(m) };
        let addresses: Vec<std::net::SocketAddr> =
            with_timeout(timing.timeout, tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port)))
                .await
                .map_err(|()| resolve_error(format!("{}: resolving timed out", endpoint.host)))?
                .map_err(|e| resolve_error(format!("{}: {e}", endpoint.host)))?
                .collect();
        let mut last = format!("{}: no address", endpoint.host);
        for address in addresses {
            match with_timeout(timing.timeout, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    let sender = if endpoint.https {
                        self.handshake_tls(stream, &endpoint.host).await.map_err(connect_error)?
                    } else {
                        handshake(stream).await.map_err(connect_error)?
                    };
                    return Ok(Channel { sender, key });
                }
                Ok(Err(e)) => last = format!("{address}: {e}"),
                Err(()) => last = format!("{address}: connect timed out after {:?}", timing.timeout),
            }
        }
        Err(connect_error(last))
    }

    async fn handshake_tls(
        &self,
        stream: TcpStream,
        host: &str,
    ) -> Result<SendRequest<Empty<Bytes>>, String> {
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls));
        let tls = connector.connect(name, stream).await.map_err(|e| format!("TLS: {e}"))?;
        handshake(tls).await
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Empty<Bytes>>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Upstream's status classes (spec 2.5).
fn classify_status(code: u16, via_proxy: bool) -> Result<(), Failure> {
    match code {
        200..=299 => Ok(()),
        429 => Err(Failure::HostConnect("HTTP 429 (too many requests)".into())),
        301 | 302 | 303 | 307 | 308 | 400 | 404 | 500..=599 => Err(Failure::HostHttp(code)),
        _ if via_proxy => Err(Failure::ProxyHttp(code)),
        _ => Err(Failure::HostHttp(code)),
    }
}

/// `future` with a deadline; a zero timeout means none.
async fn with_timeout<F: std::future::Future>(timeout: Duration, future: F) -> Result<F::Output, ()> {
    if timeout.is_zero() {
        return Ok(future.await);
    }
    tokio::time::timeout(timeout, future).await.map_err(|_| ())
}

/// A TLS configuration trusting the system CA bundle (and `extra` PEM files/dirs).
pub fn tls_config(extra: &[std::path::PathBuf]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let mut files: Vec<std::path::PathBuf> =
        vec!["/etc/ssl/certs/ca-certificates.crt".into(), "/etc/pki/tls/certs/ca-bundle.crt".into()];
    for path in extra {
        if path.is_dir() {
            if let Ok(entries) = std::fs::read_dir(path) {
                files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        } else {
            files.push(path.clone());
        }
    }
    for file in files {
        let Ok(bytes) = std::fs::read(&file) else { continue };
        for cert in rustls_pemfile::certs(&mut bytes.as_slice()).flatten() {
            let _ = roots.add(cert);
        }
    }
    Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        let u = Url::parse("http://127.0.0.1:8080/cvmfs/a.b/.cvmfspublished").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/cvmfs/a.b/.cvmfspublished")
        );
        assert_eq!(u.authority(), "127.0.0.1:8080");
        let s = Url::parse("https://[::1]/x").unwrap();
        assert_eq!((s.host.as_str(), s.port, s.https), ("::1", 443, true));
        assert_eq!(s.authority(), "[::1]");
        assert!(Url::parse("ftp://x/").is_none());
        assert!(Url::parse("http://host:notaport/").is_none());
    }

    #[test]
    fn statuses_are_classified_like_upstream() {
        assert_eq!(classify_status(200, true), Ok(()));
        assert_eq!(classify_status(404, true), Err(Failure::HostHttp(404)));
        assert_eq!(classify_status(503, false), Err(Failure::HostHttp(503)));
        assert_eq!(classify_status(407, true), Err(Failure::ProxyHttp(407)));
        assert_eq!(classify_status(407, false), Err(Failure::HostHttp(407)));
        assert!(classify_status(429, false).unwrap_err().is_transfer());
    }
}
