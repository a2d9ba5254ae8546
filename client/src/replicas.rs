//! Several servers as one: what `--server` names.
//!
//! `--server` takes one URL, several (`http://a:50051,http://b:50051`), or a
//! `dns:///host:port` target whose addresses are all used and resolved again
//! as the work goes on (a Kubernetes headless Service has one per ready
//! pod), as gRPC's own clients do with that syntax.

use std::time::Duration;

use crate::{ClientError, connect::ServerAddress};

/// The prefix of a DNS target.
pub const DNS_PREFIX: &str = "dns:///";

/// How often a DNS target is resolved again while work goes on.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(5);

/// The servers `--server` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A fixed list of URLs.
    Fixed(Vec<String>),
    /// Every address of `host`, on `port`, with `scheme` (`https` when TLS
    /// options are given, else `http`).
    Dns {
        /// The name to resolve.
        host: String,
        /// The port of every replica.
        port: u16,
        /// `http` or `https`.
        scheme: &'static str,
    },
}

impl Target {
    /// Parses `--server` (`tls`: whether TLS options were given, for DNS
    /// targets, which carry no scheme).
    pub fn parse(spec: &str, tls: bool) -> Result<Self, ClientError> {
        let invalid =
            |reason: &str| ClientError::InvalidServer { server: spec.to_string(), reason: reason.to_string() };
        if let Some(rest) = spec.strip_prefix(DNS_PREFIX) {
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| invalid("a DNS target is dns:///host:port"))?;
            let port = port.parse().map_err(|_| invalid("the port of a DNS target must be a number"))?;
            if host.is_empty() {
                return Err(invalid("a DNS target is dns:///host:port"));
            }
            let scheme = if tls { "https" } else { "http" };
            return Ok(Target::Dns { host: host.trim_matches(['[', ']']).to_string(), port, scheme });
        }
        let urls: Vec<String> = spec.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        if urls.is_empty() {
            return Err(invalid("no server given"));
        }
        Ok(Target::Fixed(urls))
    }

    /// The replicas' URLs now (a DNS target is resolved; none is an error).
    pub async fn resolve(&self) -> Result<Vec<String>, ClientError> {
        match self {
            Target::Fixed(urls) => Ok(urls.clone()),
            Target::Dns { host, port, scheme } => {
                let unreachable =
                    |reason: String| ClientError::Unreachable { server: format!("{DNS_PREFIX}{host}:{port}"), reason };
                let mut urls: Vec<String> = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|e| unreachable(format!("cannot resolve {host}: {e}")))?
                    .map(|addr| format!("{scheme}://{addr}"))
                    .collect();
                urls.sort();
                urls.dedup();
                if urls.is_empty() {
                    return Err(unreachable(format!("{host} has no address")));
                }
                Ok(urls)
            }
        }
    }

    /// Whether the target may change while work goes on.
    pub fn is_dynamic(&self) -> bool {
        matches!(self, Target::Dns { .. })
    }

    /// The name a replica's TLS certificate must hold, for DNS targets
    /// with TLS (the replicas are reached by IP address).
    pub fn tls_name(&self) -> Option<&str> {
        match self {
            Target::Dns { host, scheme: "https", .. } => Some(host),
            _ => None,
        }
    }
}

impl ServerAddress {
    /// The servers this address names.
    pub fn target(&self) -> Result<Target, ClientError> {
        Target::parse(&self.url, self.tls_enabled())
    }

    /// The same settings, for one replica's URL.
    pub fn replica(&self, url: &str, target: &Target) -> ServerAddress {
        let mut replica = self.clone();
        replica.url = url.to_string();
        if replica.tls.domain.is_none() {
            replica.tls.domain = target.tls_name().map(String::from);
        }
        replica
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_several_or_a_dns_target() {
        assert_eq!(Target::parse("http://a:1", false).unwrap(), Target::Fixed(vec!["http://a:1".into()]));
        assert_eq!(
            Target::parse("http://a:1, http://b:2,", false).unwrap(),
            Target::Fixed(vec!["http://a:1".into(), "http://b:2".into()])
        );
        assert_eq!(
            Target::parse("dns:///mnist-headless:50051", true).unwrap(),
            Target::Dns { host: "mnist-headless".into(), port: 50051, scheme: "https" }
        );
        assert!(Target::parse("dns:///nohost", false).is_err());
        assert!(Target::parse("dns:///:5", false).is_err());
        assert!(Target::parse(" , ", false).is_err());
    }

    #[tokio::test]
    async fn a_dns_target_resolves_to_every_address() {
        let target = Target::parse("dns:///localhost:50051", false).unwrap();
        let urls = target.resolve().await.unwrap();
        assert!(!urls.is_empty());
        assert!(urls.iter().all(|u| u.starts_with("http://") && u.ends_with(":50051")), "{urls:?}");
    }
}
