//! The appliances allowed to ask: matched by source address, most specific
//! network first, each with its RADIUS secret, TACACS+ key and vendor profile.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::profile::Profile;
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct Client {
    /// Shared so metrics can label by it without copying.
    pub name: Arc<str>,
    pub networks: Vec<IpNet>,
    pub radius_secret: Option<Secret>,
    /// The RADIUS secret with its HMAC and MD5 states pre-keyed.
    pub radius: Option<crate::radius::codec::Secret>,
    pub tacacs_key: Option<Secret>,
    pub profile: Profile,
    pub require_message_authenticator: bool,
    pub allow_unencrypted_tacacs: bool,
    /// How the appliance reads a RADIUS priv-lvl.
    pub privilege: PrivThresholds,
}

/// The two thresholds an appliance console compares a RADIUS priv-lvl
/// with ("Read-Write Privilege", "Read-Only Privilege"); they must match
/// what is set on the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrivThresholds {
    pub read_write: u8,
    pub read_only: u8,
}

impl Default for PrivThresholds {
    /// The consoles' defaults: 7 and above read-write, below it read-only.
    fn default() -> Self {
        Self {
            read_write: 7,
            read_only: 0,
        }
    }
}

/// What access a console gives for a priv-lvl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivReading {
    ReadWrite,
    ReadOnly,
    NoAccess,
}

impl PrivReading {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadWrite => "read-write",
            Self::ReadOnly => "read-only",
            Self::NoAccess => "no access",
        }
    }
}

impl PrivThresholds {
    pub fn reading(self, priv_lvl: u8) -> PrivReading {
        if priv_lvl >= self.read_write {
            PrivReading::ReadWrite
        } else if priv_lvl >= self.read_only {
            PrivReading::ReadOnly
        } else {
            PrivReading::NoAccess
        }
    }
}

/// Clients by network; longest prefix wins.
#[derive(Debug, Clone, Default)]
pub struct ClientTable {
    clients: Vec<Client>,
    /// (network, index into `clients`), sorted longest prefix first.
    index: Vec<(IpNet, usize)>,
}

impl ClientTable {
    pub fn new(clients: Vec<Client>) -> Self {
        let mut index: Vec<(IpNet, usize)> = clients
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.networks.iter().map(move |n| (*n, i)))
            .collect();
        index.sort_by_key(|e| std::cmp::Reverse(e.0.prefix_len()));
        Self { clients, index }
    }

    /// The client a packet from `ip` belongs to. IPv4-mapped IPv6 addresses
    /// (from dual-stack sockets) match IPv4 networks.
    pub fn lookup(&self, ip: IpAddr) -> Option<&Client> {
        self.lookup_index(ip).map(|i| &self.clients[i])
    }

    pub fn lookup_index(&self, ip: IpAddr) -> Option<usize> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.index
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|&(_, i)| i)
    }

    pub fn get(&self, index: usize) -> Option<&Client> {
        self.clients.get(index)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Client> {
        self.clients.iter()
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_reads_priv_lvl_against_its_two_thresholds() {
        let d = PrivThresholds::default();
        assert_eq!(d.reading(15), PrivReading::ReadWrite);
        assert_eq!(d.reading(7), PrivReading::ReadWrite);
        assert_eq!(d.reading(6), PrivReading::ReadOnly);
        assert_eq!(d.reading(0), PrivReading::ReadOnly);
        let t = PrivThresholds {
            read_write: 15,
            read_only: 5,
        };
        assert_eq!(t.reading(7), PrivReading::ReadOnly);
        assert_eq!(t.reading(1), PrivReading::NoAccess);
    }

    fn client(name: &str, nets: &[&str]) -> Client {
        Client {
            name: name.into(),
            networks: nets.iter().map(|n| n.parse().unwrap()).collect(),
            radius_secret: None,
            radius: None,
            tacacs_key: None,
            profile: Profile::Orchestrator,
            require_message_authenticator: true,
            allow_unencrypted_tacacs: false,
            privilege: PrivThresholds::default(),
        }
    }

    #[test]
    fn longest_prefix_wins_and_mapped_v6_matches_v4() {
        let t = ClientTable::new(vec![
            client("wide", &["127.0.0.0/8"]),
            client("narrow", &["127.0.0.5/32"]),
        ]);
        assert_eq!(
            &*t.lookup("127.0.0.5".parse().unwrap()).unwrap().name,
            "narrow"
        );
        assert_eq!(
            &*t.lookup("127.0.0.6".parse().unwrap()).unwrap().name,
            "wide"
        );
        assert_eq!(
            &*t.lookup("::ffff:127.0.0.6".parse().unwrap()).unwrap().name,
            "wide"
        );
        assert!(t.lookup("10.0.0.1".parse().unwrap()).is_none());
    }
}
