//! The Stratum-1 host chain and the proxy chain, and the fail-over state shared by all
//! requests of a mount (spec 2.1, 2.2, 2.4, 2.7, 2.8).

use std::time::{Duration, Instant};

use rand::Rng;
use thiserror::Error;

/// One proxy: `None` is DIRECT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proxy {
    pub url: Option<String>,
}

impl Proxy {
    pub fn direct() -> Proxy {
        Proxy { url: None }
    }

    pub fn is_direct(&self) -> bool {
        self.url.is_none()
    }

    /// `DIRECT` or the URL, as `cvmfs_talk` and `user.proxy` show it.
    pub fn label(&self) -> &str {
        self.url.as_deref().unwrap_or("DIRECT")
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("proxy '{0}' is not an http:// or https:// URL")]
    BadProxy(String),
    #[error("no proxy is configured (CVMFS_HTTP_PROXY is empty); use DIRECT for none")]
    NoProxies,
    #[error("no server is configured (CVMFS_SERVER_URL is empty)")]
    NoHosts,
}

/// Parses a proxy string: `;`-separated groups of `|`-separated members. `DIRECT` (or an
/// empty member) is no proxy; a member without scheme gets `http://`. `auto` groups are
/// the caller's to resolve (PAC) before this.
pub fn parse_proxy_groups(text: &str) -> Result<Vec<Vec<Proxy>>, ChainError> {
    let mut groups = Vec::new();
    for group in text.split(';').map(str::trim).filter(|g| !g.is_empty()) {
        let mut members = Vec::new();
        for member in group.split('|').map(str::trim) {
            members.push(parse_proxy(member)?);
        }
        groups.push(members);
    }
    Ok(groups)
}

fn parse_proxy(member: &str) -> Result<Proxy, ChainError> {
    if member.is_empty() || member.eq_ignore_ascii_case("DIRECT") {
        return Ok(Proxy::direct());
    }
    let url = if member.contains("://") { member.to_string() } else { format!("http://{member}") };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ChainError::BadProxy(member.to_string()));
    }
    Ok(Proxy { url: Some(url.trim_end_matches('/').to_string()) })
}

/// The effective chain: regular groups, then fallback groups (spec 2.2). Returns the
/// groups and the index of the first fallback group.
pub fn effective_chain(regular: &str, fallback: &str) -> Result<(Vec<Vec<Proxy>>, usize), ChainError> {
    let strip = |groups: Vec<Vec<Proxy>>| -> Vec<Vec<Proxy>> {
        groups
            .into_iter()
            .map(|g| g.into_iter().filter(|p| !p.is_direct()).collect::<Vec<_>>())
            .filter(|g| !g.is_empty())
            .collect()
    };
    let fallback = strip(parse_proxy_groups(fallback)?);
    let mut groups = parse_proxy_groups(regular)?;
    if !fallback.is_empty() {
        groups = strip(groups);
    }
    let first_fallback = groups.len();
    groups.extend(fallback);
    if groups.is_empty() {
        return Err(ChainError::NoProxies);
    }
    Ok((groups, first_fallback))
}

/// A proxy name resolving to several addresses becomes several members of its group,
/// one per address, the URL rewritten with the address (IPv6 in brackets); IPv4
/// addresses are preferred when there are both (spec 2.1, 2.3). Names that do not
/// resolve stay as they are (their requests then fail as proxy errors).
pub fn expand_proxy_names(
    groups: Vec<Vec<Proxy>>,
    resolve: &dyn Fn(&str, u16) -> Vec<std::net::IpAddr>,
) -> Vec<Vec<Proxy>> {
    groups
        .into_iter()
        .map(|group| {
            let mut members = Vec::new();
            for proxy in group {
                let Some(url) = proxy.url.as_deref().and_then(crate::http::Url::parse) else {
                    members.push(proxy);
                    continue;
                };
                if url.host.parse::<std::net::IpAddr>().is_ok() {
                    members.push(proxy);
                    continue;
                }
                let mut addresses = resolve(&url.host, url.port);
                if addresses.iter().any(|a| a.is_ipv4()) {
                    addresses.retain(|a| a.is_ipv4());
                }
                addresses.sort();
                addresses.dedup();
                if addresses.len() < 2 {
                    members.push(proxy);
                    continue;
                }
                for address in addresses {
                    let host = if address.is_ipv6() { format!("[{address}]") } else { address.to_string() };
                    let scheme = if url.https { "https" } else { "http" };
                    members.push(Proxy { url: Some(format!("{scheme}://{host}:{}", url.port)) });
                }
            }
            members
        })
        .collect()
}

/// Addresses of `host` from the system resolver (hosts file, DNS).
pub fn system_resolve(host: &str, port: u16) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    (host, port).to_socket_addrs().map(|found| found.map(|a| a.ip()).collect()).unwrap_or_default()
}

/// Fail-over state of one download manager.
#[derive(Debug)]
pub struct Failover {
    pub hosts: Vec<String>,
    pub current_host: usize,
    host_backup_since: Option<Instant>,
    pub groups: Vec<Vec<Proxy>>,
    pub first_fallback: usize,
    pub current_group: usize,
    /// Burned members of the current group.
    burned: Vec<bool>,
    pub current_member: usize,
    group_backup_since: Option<Instant>,
    within_group_since: Option<Instant>,
    pub proxy_reset_after: Duration,
    pub host_reset_after: Duration,
}

/// What a request uses for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub host_index: usize,
    pub host: String,
    pub proxy: Proxy,
}

impl Failover {
    pub fn new(
        hosts: Vec<String>,
        groups: Vec<Vec<Proxy>>,
        first_fallback: usize,
    ) -> Result<Failover, ChainError> {
        if hosts.is_empty() {
            return Err(ChainError::NoHosts);
        }
        if groups.is_empty() {
            return Err(ChainError::NoProxies);
        }
        let burned = vec![false; groups[0].len()];
        let mut failover = Failover {
            hosts,
            current_host: 0,
            host_backup_since: None,
            groups,
            first_fallback,
            current_group: 0,
            burned,
            current_member: 0,
            group_backup_since: None,
            within_group_since: None,
            proxy_reset_after: Duration::ZERO,
            host_reset_after: Duration::ZERO,
        };
        failover.pick_member();
        Ok(failover)
    }

    /// Total members over all groups (the per-request proxy budget).
    pub fn proxy_count(&self) -> usize {
        self.groups.iter().map(Vec::len).sum()
    }

    pub fn current_proxy(&self) -> &Proxy {
        &self.groups[self.current_group][self.current_member]
    }

    pub fn route(&self) -> Route {
        Route {
            host_index: self.current_host,
            host: self.hosts[self.current_host].clone(),
            proxy: self.current_proxy().clone(),
        }
    }

    /// A random live member of the current group.
    fn pick_member(&mut self) {
        let live: Vec<usize> =
            (0..self.groups[self.current_group].len()).filter(|&i| !self.burned[i]).collect();
        if let Some(&choice) = live.get(rand::thread_rng().gen_range(0..live.len().max(1))) {
            self.current_member = choice;
        }
    }

    fn enter_group(&mut self, group: usize) {
        self.current_group = group;
        self.burned = vec![false; self.groups[group].len()];
        self.within_group_since = None;
        if group == 0 {
            self.group_backup_since = None;
        } else if !self.proxy_reset_after.is_zero() && self.group_backup_since.is_none() {
            self.group_backup_since = Some(Instant::now());
        }
        self.pick_member();
    }

    /// The reset timers (spec 2.8), checked at the start of every request.
    pub fn apply_resets(&mut self, now: Instant) {
        if let Some(since) = self.group_backup_since {
            if now.duration_since(since) > self.proxy_reset_after {
                tracing::info!("reset proxy group from backup to primary");
                self.enter_group(0);
            }
        }
        if let Some(since) = self.within_group_since {
            if now.duration_since(since) > self.proxy_reset_after {
                self.burned.iter_mut().for_each(|b| *b = false);
                self.within_group_since = None;
                self.pick_member();
            }
        }
        if let Some(since) = self.host_backup_since {
            if now.duration_since(since) > self.host_reset_after {
                tracing::info!(from = %self.hosts[self.current_host], to = %self.hosts[0], "switching host (reset host)");
                self.current_host = 0;
                self.host_backup_since = None;
            }
        }
    }

    /// Proxy fail-over after `used` failed: burn it, move on within the group or to the
    /// next group. Nothing changes if another request already moved away from `used`.
    pub fn fail_proxy(&mut self, used: &Proxy, reason: &str) {
        let group = &self.groups[self.current_group];
        let mut matched = false;
        for (i, member) in group.iter().enumerate() {
            if member == used && !self.burned[i] {
                self.burned[i] = true;
                matched = true;
            }
        }
        if !matched {
            return;
        }
        let from = used.label().to_string();
        if self.burned.iter().all(|&b| b) {
            let next = (self.current_group + 1) % self.groups.len();
            self.enter_group(next);
        } else {
            if !self.proxy_reset_after.is_zero() && self.within_group_since.is_none() {
                self.within_group_since = Some(Instant::now());
            }
            self.pick_member();
        }
        tracing::warn!(from = %from, to = %self.current_proxy().label(), reason, "switching proxy");
    }

    /// Host fail-over after a request on host `used_index` failed.
    pub fn fail_host(&mut self, used_index: usize, reason: &str) {
        if used_index != self.current_host || self.hosts.len() < 2 {
            return;
        }
        let from = self.hosts[self.current_host].clone();
        self.current_host = (self.current_host + 1) % self.hosts.len();
        if self.current_host == 0 {
            self.host_backup_since = None;
        } else if !self.host_reset_after.is_zero() && self.host_backup_since.is_none() {
            self.host_backup_since = Some(Instant::now());
        }
        tracing::warn!(from = %from, to = %self.hosts[self.current_host], reason, "switching host");
    }

    /// Back to the first group with a fresh choice (when all proxies failed for a
    /// request and the host is tried next).
    pub fn reset_proxies(&mut self) {
        if self.current_group != 0 || self.burned.iter().any(|&b| b) {
            self.enter_group(0);
        }
    }

    /// `cvmfs_talk proxy rebalance`.
    pub fn rebalance(&mut self) {
        self.burned.iter_mut().for_each(|b| *b = false);
        self.pick_member();
    }

    /// `cvmfs_talk proxy group switch`.
    pub fn switch_group(&mut self) {
        let next = (self.current_group + 1) % self.groups.len();
        self.enter_group(next);
    }

    /// `cvmfs_talk host switch`.
    pub fn switch_host(&mut self) {
        let current = self.current_host;
        self.fail_host(current, "manually triggered");
    }

    /// Replaces the host list (`cvmfs_talk host set`, Geo-API ordering).
    pub fn set_hosts(&mut self, hosts: Vec<String>) {
        if !hosts.is_empty() {
            self.hosts = hosts;
            self.current_host = 0;
            self.host_backup_since = None;
        }
    }

    /// Every member of every group, in order.
    pub fn all_proxies(&self) -> Vec<Proxy> {
        self.groups.iter().flatten().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(url: &str) -> Proxy {
        Proxy { url: Some(url.to_string()) }
    }

    #[test]
    fn proxy_strings_parse_like_upstream() {
        let groups = parse_proxy_groups("p1:3128|http://p2:3128;https://p3;DIRECT").unwrap();
        assert_eq!(
            groups,
            vec![
                vec![p("http://p1:3128"), p("http://p2:3128")],
                vec![p("https://p3")],
                vec![Proxy::direct()]
            ]
        );
        assert_eq!(parse_proxy_groups("p1|").unwrap(), vec![vec![p("http://p1"), Proxy::direct()]]);
        assert!(parse_proxy_groups("ftp://x").is_err());
    }

    #[test]
    fn fallback_proxies_drop_direct_and_come_last() {
        let (groups, first) = effective_chain("http://a;DIRECT", "http://f1|DIRECT;http://f2").unwrap();
        assert_eq!(groups, vec![vec![p("http://a")], vec![p("http://f1")], vec![p("http://f2")]]);
        assert_eq!(first, 1);
        let (groups, first) = effective_chain("http://a;DIRECT", "").unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(first, 2);
        assert_eq!(effective_chain("", ""), Err(ChainError::NoProxies));
    }

    #[test]
    fn proxies_burn_within_a_group_then_the_next_group() {
        let groups = vec![vec![p("http://a"), p("http://b")], vec![Proxy::direct()]];
        let mut f = Failover::new(vec!["h1".into(), "h2".into()], groups, 2).unwrap();
        let first = f.current_proxy().clone();
        f.fail_proxy(&first, "test");
        assert_eq!(f.current_group, 0);
        assert_ne!(f.current_proxy(), &first);
        let second = f.current_proxy().clone();
        f.fail_proxy(&first, "stale report is ignored");
        assert_eq!(f.current_proxy(), &second);
        f.fail_proxy(&second, "test");
        assert_eq!(f.current_group, 1);
        assert!(f.current_proxy().is_direct());
        f.fail_proxy(&Proxy::direct(), "test");
        assert_eq!(f.current_group, 0, "wraps around");
    }

    #[test]
    fn proxy_names_with_several_addresses_become_several_members() {
        let resolve = |host: &str, _port: u16| -> Vec<std::net::IpAddr> {
            match host {
                "squids.example" => {
                    vec!["10.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()]
                }
                "v6only.example" => vec!["fd00::1".parse().unwrap(), "fd00::2".parse().unwrap()],
                "one.example" => vec!["10.0.0.9".parse().unwrap()],
                _ => vec![],
            }
        };
        let groups = parse_proxy_groups("http://squids.example:3128;http://v6only.example:3128|http://one.example:80;DIRECT;http://nowhere:1").unwrap();
        let expanded = expand_proxy_names(groups, &resolve);
        assert_eq!(expanded[0], vec![p("http://10.0.0.1:3128"), p("http://10.0.0.2:3128")]);
        assert_eq!(
            expanded[1],
            vec![p("http://[fd00::1]:3128"), p("http://[fd00::2]:3128"), p("http://one.example:80")]
        );
        assert_eq!(expanded[2], vec![Proxy::direct()]);
        assert_eq!(expanded[3], vec![p("http://nowhere:1")]);
    }

    #[test]
    fn hosts_fail_over_once_per_report_and_reset() {
        let mut f = Failover::new(vec!["h1".into(), "h2".into()], vec![vec![Proxy::direct()]], 1).unwrap();
        f.host_reset_after = Duration::from_millis(1);
        f.fail_host(0, "test");
        assert_eq!(f.current_host, 1);
        f.fail_host(0, "another request saw the same failure");
        assert_eq!(f.current_host, 1);
        std::thread::sleep(Duration::from_millis(5));
        f.apply_resets(Instant::now());
        assert_eq!(f.current_host, 0);
    }
}
