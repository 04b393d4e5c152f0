//! WPAD/PAC proxy auto-configuration (spec 3): `auto` groups of `CVMFS_HTTP_PROXY`
//! resolved from `$http_proxy` or PAC files, which are real JavaScript evaluated by an
//! embedded engine (QuickJS) with the standard Netscape helper functions.
//!
//! A PAC script is hostile input: it runs with a memory limit and a time limit, and any
//! failure is an error for that PAC URL, never a crash or a hang.

use std::net::{IpAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use rquickjs::{Context, Function, Runtime};
use thiserror::Error;

/// How long a PAC script may run.
pub const PAC_TIME_LIMIT: Duration = Duration::from_secs(5);
const PAC_MEMORY_LIMIT: usize = 64 << 20;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PacError {
    #[error("the PAC engine cannot start: {0}")]
    Engine(String),
    #[error("the PAC script does not evaluate: {0}")]
    Script(String),
    #[error("the PAC script defines neither FindProxyForURLEx nor FindProxyForURL")]
    NoFunction,
    #[error("the PAC answer '{0}' names no usable proxy (only PROXY and DIRECT are supported)")]
    NothingUsable(String),
}

/// The Netscape helpers a PAC script may call, in JavaScript on top of two native
/// functions (`__resolve`, `__myIp`).
const HELPERS: &str = r#"
function dnsResolve(host) { var r = __resolve(host, false); return r === "" ? null : r; }
function dnsResolveEx(host) { return __resolve(host, true); }
function myIpAddress() { return __myIp(false); }
function myIpAddressEx() { return __myIp(true); }
function isResolvable(host) { return dnsResolve(host) !== null; }
function isResolvableEx(host) { return dnsResolveEx(host) !== ""; }
function isPlainHostName(host) { return host.indexOf('.') < 0; }
function dnsDomainIs(host, domain) {
  return host.length >= domain.length && host.substring(host.length - domain.length) === domain;
}
function localHostOrDomainIs(host, hostdom) {
  return host === hostdom || hostdom.lastIndexOf(host + '.', 0) === 0;
}
function dnsDomainLevels(host) { return host.split('.').length - 1; }
function __ip4(text) {
  var parts = text.split('.');
  if (parts.length !== 4) return null;
  var n = 0;
  for (var i = 0; i < 4; i++) {
    var v = parseInt(parts[i], 10);
    if (isNaN(v) || v < 0 || v > 255) return null;
    n = n * 256 + v;
  }
  return n;
}
function isInNet(host, pattern, mask) {
  var ip = __ip4(host);
  if (ip === null) { var r = dnsResolve(host); if (r === null) return false; ip = __ip4(r); }
  var p = __ip4(pattern), m = __ip4(mask);
  if (ip === null || p === null || m === null) return false;
  for (var i = 0; i < 4; i++) {
    var b = Math.pow(256, 3 - i);
    if ((Math.floor(ip / b) % 256 & Math.floor(m / b) % 256) !== (Math.floor(p / b) % 256 & Math.floor(m / b) % 256)) return false;
  }
  return true;
}
function isInNetEx(host, prefix) {
  var slash = prefix.indexOf('/');
  if (slash < 0) return false;
  var bits = parseInt(prefix.substring(slash + 1), 10);
  var net = __ip4(prefix.substring(0, slash));
  var ip = __ip4(host);
  if (ip === null) { var r = dnsResolve(host); if (r === null) return false; ip = __ip4(r); }
  if (net === null || ip === null || isNaN(bits)) return false;
  var size = Math.pow(2, 32 - bits);
  return Math.floor(ip / size) === Math.floor(net / size);
}
function shExpMatch(text, pattern) {
  var re = '^' + pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$';
  return new RegExp(re).test(text);
}
var __days = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
var __months = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
function __now(args) {
  var d = new Date();
  if (args.length > 0 && args[args.length - 1] === 'GMT') {
    return { day: d.getUTCDay(), date: d.getUTCDate(), month: d.getUTCMonth(), year: d.getUTCFullYear(),
             hour: d.getUTCHours(), min: d.getUTCMinutes(), sec: d.getUTCSeconds(), gmt: true };
  }
  return { day: d.getDay(), date: d.getDate(), month: d.getMonth(), year: d.getFullYear(),
           hour: d.getHours(), min: d.getMinutes(), sec: d.getSeconds(), gmt: false };
}
function __strip(args) {
  var a = Array.prototype.slice.call(args);
  if (a.length > 0 && a[a.length - 1] === 'GMT') a.pop();
  return a;
}
function __between(v, lo, hi) { return lo <= hi ? (v >= lo && v <= hi) : (v >= lo || v <= hi); }
function weekdayRange() {
  var now = __now(arguments), a = __strip(arguments);
  var lo = __days.indexOf(a[0]), hi = a.length > 1 ? __days.indexOf(a[1]) : lo;
  if (lo < 0 || hi < 0) return false;
  return __between(now.day, lo, hi);
}
function dateRange() {
  var now = __now(arguments), a = __strip(arguments);
  var num = function (x) { return typeof x === 'number' ? x : parseInt(x, 10); };
  if (a.length === 1) {
    var m = __months.indexOf(a[0]);
    if (m >= 0) return now.month === m;
    var n = num(a[0]);
    return n > 31 ? now.year === n : now.date === n;
  }
  if (a.length === 2) {
    var m1 = __months.indexOf(a[0]), m2 = __months.indexOf(a[1]);
    if (m1 >= 0 && m2 >= 0) return __between(now.month, m1, m2);
    var x = num(a[0]), y = num(a[1]);
    return x > 31 ? __between(now.year, x, y) : __between(now.date, x, y);
  }
  if (a.length === 4) {
    var ma = __months.indexOf(a[1]), mb = __months.indexOf(a[3]);
    if (ma >= 0 && mb >= 0) {
      var v = now.month * 100 + now.date;
      return __between(v, ma * 100 + num(a[0]), mb * 100 + num(a[2]));
    }
    var mc = __months.indexOf(a[0]), md = __months.indexOf(a[2]);
    var w = now.year * 100 + now.month;
    return __between(w, num(a[1]) * 100 + mc, num(a[3]) * 100 + md);
  }
  if (a.length === 6) {
    var v6 = (now.year * 100 + now.month) * 100 + now.date;
    var lo6 = (num(a[2]) * 100 + __months.indexOf(a[1])) * 100 + num(a[0]);
    var hi6 = (num(a[5]) * 100 + __months.indexOf(a[4])) * 100 + num(a[3]);
    return __between(v6, lo6, hi6);
  }
  return false;
}
function timeRange() {
  var now = __now(arguments), a = __strip(arguments).map(function (x) { return parseInt(x, 10); });
  var t = now.hour * 3600 + now.min * 60 + now.sec;
  if (a.length === 1) return now.hour === a[0];
  if (a.length === 2) return __between(now.hour, a[0], a[1] - 1) || (a[0] === a[1] && now.hour === a[0]);
  if (a.length === 4) return __between(t, a[0] * 3600 + a[1] * 60, a[2] * 3600 + a[3] * 60);
  if (a.length === 6) return __between(t, a[0] * 3600 + a[1] * 60 + a[2], a[3] * 3600 + a[4] * 60 + a[5]);
  return false;
}
"#;

fn resolve(host: String, all: bool) -> String {
    let addresses: Vec<IpAddr> = match (host.as_str(), 0).to_socket_addrs() {
        Ok(found) => found.map(|a| a.ip()).collect(),
        Err(_) => return String::new(),
    };
    if all {
        addresses.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(";")
    } else {
        addresses.iter().find(|a| a.is_ipv4()).map(IpAddr::to_string).unwrap_or_default()
    }
}

fn my_ip(all: bool) -> String {
    // The address the kernel would use towards the outside (no packet is sent).
    let probe = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr());
    match probe {
        Ok(address) if all => address.ip().to_string(),
        Ok(address) => address.ip().to_string(),
        Err(_) => "127.0.0.1".into(),
    }
}

/// Evaluates `script` and calls `FindProxyForURLEx` (or `FindProxyForURL`) for `url`
/// and `host`; returns the raw answer.
pub fn find_proxy(script: &str, url: &str, host: &str) -> Result<String, PacError> {
    let runtime = Runtime::new().map_err(|e| PacError::Engine(e.to_string()))?;
    runtime.set_memory_limit(PAC_MEMORY_LIMIT);
    let started = Instant::now();
    runtime.set_interrupt_handler(Some(Box::new(move || started.elapsed() > PAC_TIME_LIMIT)));
    let context = Context::full(&runtime).map_err(|e| PacError::Engine(e.to_string()))?;
    context.with(|ctx| {
        let globals = ctx.globals();
        let resolve_fn = Function::new(ctx.clone(), resolve).map_err(|e| PacError::Engine(e.to_string()))?;
        let my_ip_fn = Function::new(ctx.clone(), my_ip).map_err(|e| PacError::Engine(e.to_string()))?;
        globals.set("__resolve", resolve_fn).map_err(|e| PacError::Engine(e.to_string()))?;
        globals.set("__myIp", my_ip_fn).map_err(|e| PacError::Engine(e.to_string()))?;
        ctx.eval::<(), _>(HELPERS).map_err(|e| PacError::Engine(e.to_string()))?;
        ctx.eval::<(), _>(script).map_err(|e| PacError::Script(describe(&ctx, e)))?;
        let function: Function = match globals.get::<_, Function>("FindProxyForURLEx") {
            Ok(f) => f,
            Err(_) => globals.get("FindProxyForURL").map_err(|_| PacError::NoFunction)?,
        };
        let answer: rquickjs::Value = function
            .call((url.to_string(), host.to_string()))
            .map_err(|e| PacError::Script(describe(&ctx, e)))?;
        Ok(answer.as_string().and_then(|s| s.to_string().ok()).unwrap_or_default())
    })
}

fn describe(ctx: &rquickjs::Ctx<'_>, error: rquickjs::Error) -> String {
    if matches!(error, rquickjs::Error::Exception) {
        let exception = ctx.catch();
        if let Some(e) = exception.as_exception() {
            return e.message().unwrap_or_else(|| "exception".into());
        }
        return format!("{exception:?}");
    }
    error.to_string()
}

/// Upstream's conversion of a PAC answer into a proxy string: each `PROXY x` or
/// `DIRECT` item becomes its own group; `SOCKS` and unknown items are dropped; an
/// empty answer is DIRECT.
pub fn answer_to_proxy_string(answer: &str) -> Result<String, PacError> {
    if answer.trim().is_empty() {
        return Ok("DIRECT".into());
    }
    let items: Vec<String> = answer
        .split(';')
        .map(|item| item.chars().filter(|c| !matches!(c, ' ' | '\t')).collect::<String>())
        .filter_map(|item| {
            if item == "DIRECT" {
                Some(item)
            } else {
                item.strip_prefix("PROXY").filter(|rest| !rest.is_empty()).map(str::to_string)
            }
        })
        .collect();
    if items.is_empty() {
        return Err(PacError::NothingUsable(answer.to_string()));
    }
    Ok(items.join(";"))
}

/// The host name of a server URL, as upstream passes it to `FindProxyForURL`.
pub fn host_of(url: &str) -> String {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .or_else(|| url.strip_prefix("file://"))
        .unwrap_or(url);
    let end = rest.find([':', '/']).unwrap_or(rest.len());
    let host = &rest[..end];
    if host.is_empty() {
        "localhost".into()
    } else {
        host.to_string()
    }
}

/// Resolves the `auto` groups of `description` (spec 3, steps 1-3). `fetch` downloads a
/// PAC URL. Returns the resolved string and whether every `auto` group resolved.
pub fn resolve_auto(
    description: &str,
    pac_urls: &[String],
    first_host: &str,
    env_http_proxy: Option<&str>,
    fetch: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> (String, bool) {
    if !description.contains("auto") {
        return (description.to_string(), true);
    }
    let mut complete = true;
    let mut groups = Vec::new();
    for group in description.split(';') {
        if group.trim() != "auto" {
            groups.push(group.to_string());
            continue;
        }
        match discover(pac_urls, first_host, env_http_proxy, fetch) {
            Some(found) => groups.push(found),
            None => complete = false,
        }
    }
    let joined = groups.into_iter().filter(|g| !g.trim().is_empty()).collect::<Vec<_>>().join(";");
    (joined, complete)
}

fn discover(
    pac_urls: &[String],
    first_host: &str,
    env_http_proxy: Option<&str>,
    fetch: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Option<String> {
    if let Some(proxy) = env_http_proxy.filter(|p| !p.is_empty()) {
        return Some(proxy.to_string());
    }
    let probe_url = format!("{}/.cvmfspublished", first_host.trim_end_matches('/'));
    for pac_url in pac_urls {
        let pac_url = if pac_url == "auto" { "http://wpad/wpad.dat" } else { pac_url.as_str() };
        let Some(script) = fetch(pac_url) else {
            tracing::warn!(pac_url, "cannot fetch the PAC file");
            continue;
        };
        let script = String::from_utf8_lossy(&script);
        let result =
            find_proxy(&script, &probe_url, &host_of(first_host)).and_then(|a| answer_to_proxy_string(&a));
        match result {
            Ok(proxies) => return Some(proxies),
            Err(e) => tracing::warn!(pac_url, error = %e, "PAC file unusable"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_convert_like_upstream() {
        assert_eq!(
            answer_to_proxy_string("PROXY a:3128; PROXY b:3128; DIRECT").unwrap(),
            "a:3128;b:3128;DIRECT"
        );
        assert_eq!(answer_to_proxy_string("").unwrap(), "DIRECT");
        assert_eq!(answer_to_proxy_string("SOCKS s:1080; PROXY p:1").unwrap(), "p:1");
        assert!(answer_to_proxy_string("SOCKS s:1080").is_err());
    }

    #[test]
    fn scripts_with_helpers_give_host_dependent_answers() {
        let script = r#"
            function FindProxyForURL(url, host) {
              if (isPlainHostName(host) || dnsDomainIs(host, ".local")) return "DIRECT";
              if (shExpMatch(url, "*cern.ch*") && isInNet("10.1.2.3", "10.0.0.0", "255.0.0.0")) return "PROXY p1:3128; PROXY p2:3128";
              if (dnsDomainLevels(host) > 3) return "PROXY deep:1";
              return "PROXY other:8080; DIRECT";
            }"#;
        let ask =
            |url: &str, host: &str| answer_to_proxy_string(&find_proxy(script, url, host).unwrap()).unwrap();
        assert_eq!(ask("http://s1/x", "s1"), "DIRECT");
        assert_eq!(ask("http://a.b.local/x", "a.b.local"), "DIRECT");
        assert_eq!(ask("http://cvmfs.cern.ch/x", "cvmfs.cern.ch"), "p1:3128;p2:3128");
        assert_eq!(ask("http://a.b.c.d.org/x", "a.b.c.d.org"), "deep:1");
        assert_eq!(ask("http://x.org/x", "x.org"), "other:8080;DIRECT");
        assert!(find_proxy(script, "u", "h").is_ok());
        assert!(find_proxy("function FindProxyForURLEx(u, h) { return isInNetEx('10.1.2.3', '10.0.0.0/8') ? 'PROXY ex:1' : ''; }", "u", "h").unwrap() == "PROXY ex:1");
        assert!(find_proxy("function FindProxyForURL(u, h) { return shExpMatch('abc', 'a?c') && localHostOrDomainIs('www', 'www.x.org') ? 'DIRECT' : 'no'; }", "u", "h").unwrap() == "DIRECT");
        assert!(find_proxy("timeRange(0, 24); weekdayRange('SUN', 'SAT'); dateRange(1, 31); function FindProxyForURL(){return 'DIRECT'}", "u", "h").is_ok());
    }

    #[test]
    fn broken_and_hostile_scripts_fail_cleanly() {
        assert!(matches!(find_proxy("function (", "u", "h"), Err(PacError::Script(_))));
        assert_eq!(find_proxy("var x = 1;", "u", "h"), Err(PacError::NoFunction));
        assert!(
            matches!(find_proxy("function FindProxyForURL(){ throw new Error('boom'); }", "u", "h"), Err(PacError::Script(m)) if m.contains("boom"))
        );
        let started = Instant::now();
        assert!(find_proxy("function FindProxyForURL(){ while (true) {} }", "u", "h").is_err());
        assert!(started.elapsed() < PAC_TIME_LIMIT * 4);
    }

    #[test]
    fn auto_groups_resolve_from_the_environment_or_pac_urls() {
        let fetch = |url: &str| {
            (url == "http://pac/ok.pac")
                .then(|| b"function FindProxyForURL(u,h){return 'PROXY p:1; DIRECT';}".to_vec())
        };
        let urls = vec!["http://pac/missing.pac".to_string(), "http://pac/ok.pac".to_string()];
        assert_eq!(
            resolve_auto("auto;DIRECT", &urls, "http://s1/cvmfs/x", None, &fetch),
            ("p:1;DIRECT;DIRECT".into(), true)
        );
        assert_eq!(
            resolve_auto("auto", &urls, "http://s1", Some("http://env:3128"), &fetch),
            ("http://env:3128".into(), true)
        );
        assert_eq!(resolve_auto("auto;DIRECT", &[], "http://s1", None, &fetch), ("DIRECT".into(), false));
        assert_eq!(resolve_auto("http://a", &[], "http://s1", None, &fetch), ("http://a".into(), true));
        assert_eq!(host_of("http://s1.cern.ch:8000/cvmfs/x"), "s1.cern.ch");
        assert_eq!(host_of("file:///srv"), "localhost");
    }
}
