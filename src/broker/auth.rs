//! Users and their credentials. Passwords are kept as salted SHA-256 hashes in RabbitMQ's
//! `rabbit_password_hashing_sha256` layout (4-byte salt ++ sha256(salt ++ password)), so
//! definitions exported from RabbitMQ import unchanged. Tags (administrator, monitoring, ...)
//! ride along. The handshake and the management API read this; it never logs a password and
//! never touches the store (callers persist what they change).

use dashmap::DashMap;
use sha2::{Digest, Sha256};

/// RabbitMQ's name for the only hashing scheme Warren writes.
pub const HASHING_ALGORITHM: &str = "rabbit_password_hashing_sha256";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// salt (4 bytes) followed by sha256(salt ++ password); empty: password login disabled
    /// (a user for x509 certificates only, as RabbitMQ's passwordless users).
    pub password_hash: Vec<u8>,
    pub tags: Vec<String>,
    /// RabbitMQ's user limits by name ("max-connections", "max-channels"); a negative
    /// value means no limit.
    pub limits: Vec<(String, i64)>,
}

impl User {
    /// A limit that is set and not negative.
    pub fn limit(&self, name: &str) -> Option<u64> {
        self.limits
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| u64::try_from(*v).ok())
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    pub fn is_administrator(&self) -> bool {
        self.has_tag("administrator")
    }

    /// Any tag that lets a user log in to the management API (RabbitMQ: management,
    /// policymaker, monitoring or administrator).
    pub fn may_use_management(&self) -> bool {
        ["management", "policymaker", "monitoring", "administrator"]
            .iter()
            .any(|t| self.has_tag(t))
    }
}

pub fn hash_password(password: &str) -> Vec<u8> {
    hash_with_salt(rand::random(), password)
}

fn hash_with_salt(salt: [u8; 4], password: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&h.finalize());
    out
}

/// Tags as RabbitMQ accepts them: a list, or one comma-separated string.
pub fn parse_tags(s: &str) -> Vec<String> {
    s.split([',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Debug, Default)]
pub struct Users {
    users: DashMap<String, User>,
}

impl Users {
    /// Add or replace a user with a clear-text password (hashed here).
    pub fn add(&self, name: &str, password: &str, tags: Vec<String>) -> User {
        self.put(User {
            name: name.to_owned(),
            password_hash: hash_password(password),
            tags,
            limits: Vec::new(),
        })
    }

    /// Add or replace a user as stored (or imported from a definitions file).
    pub fn put(&self, user: User) -> User {
        self.users.insert(user.name.clone(), user.clone());
        user
    }

    pub fn get(&self, name: &str) -> Option<User> {
        self.users.get(name).map(|u| u.clone())
    }

    pub fn remove(&self, name: &str) -> Option<User> {
        self.users.remove(name).map(|(_, u)| u)
    }

    /// Every user, sorted by name.
    pub fn list(&self) -> Vec<User> {
        let mut all: Vec<User> = self.users.iter().map(|u| u.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The user, when it exists and the password is right.
    pub fn check(&self, name: &str, password: &str) -> Option<User> {
        let user = self.users.get(name)?;
        if user.password_hash.len() != 36 {
            return None;
        }
        let mut salt = [0u8; 4];
        salt.copy_from_slice(&user.password_hash[..4]);
        let candidate = hash_with_salt(salt, password);
        // constant-time comparison: no early exit on the first differing byte
        let same = candidate
            .iter()
            .zip(user.password_hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        same.then(|| user.clone())
    }
}

/// Failed logins per peer address, throttled as a generic cell rate: a burst of `BURST`
/// failures passes at once, after that one per `INTERVAL`, however many connections the
/// peer opens in parallel (each failure reserves the next slot). The handshake sleeps for
/// the returned delay before refusing, so guessing passwords costs time; a right password
/// is never delayed.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    next_slot: DashMap<std::net::IpAddr, std::time::Instant>,
}

impl LoginThrottle {
    const BURST: u32 = 5;
    const INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

    /// Record a failure; how long to wait before answering it.
    pub fn failed(&self, ip: std::net::IpAddr) -> std::time::Duration {
        let now = std::time::Instant::now();
        let mut tat = self.next_slot.entry(ip).or_insert(now);
        let next = (*tat).max(now) + Self::INTERVAL;
        *tat = next;
        let allowance = Self::INTERVAL * Self::BURST;
        next.saturating_duration_since(now + allowance)
    }

    /// Forget addresses that have been quiet long enough (keeps the map small).
    pub fn prune(&self) {
        let now = std::time::Instant::now();
        self.next_slot.retain(|_, tat| *tat > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_password_passes_and_wrong_one_fails() {
        let users = Users::default();
        users.add("guest", "guest", vec!["administrator".into()]);
        assert!(users.check("guest", "guest").is_some());
        assert!(users.check("guest", "nope").is_none());
        assert!(users.check("nobody", "guest").is_none());
    }

    #[test]
    fn a_user_without_password_cannot_log_in_with_any() {
        let users = Users::default();
        users.put(User {
            name: "cert-only".into(),
            password_hash: Vec::new(),
            tags: vec![],
            limits: Vec::new(),
        });
        assert!(users.check("cert-only", "").is_none());
    }

    #[test]
    fn the_hash_from_rabbitmqs_passwords_guide_verifies() {
        // rabbitmq.com/docs/passwords: salt 908DC60A, password "test12".
        use base64::Engine;
        let hash = base64::engine::general_purpose::STANDARD
            .decode("kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR")
            .unwrap();
        assert_eq!(hash_with_salt([0x90, 0x8d, 0xc6, 0x0a], "test12"), hash);
        let users = Users::default();
        users.put(User {
            name: "u".into(),
            password_hash: hash,
            tags: vec![],
            limits: Vec::new(),
        });
        assert!(users.check("u", "test12").is_some());
        assert!(users.check("u", "test13").is_none());
    }

    #[test]
    fn repeated_failures_from_one_address_are_spaced_out() {
        let t = LoginThrottle::default();
        let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..LoginThrottle::BURST {
            assert_eq!(t.failed(ip), std::time::Duration::ZERO);
        }
        let d1 = t.failed(ip);
        let d2 = t.failed(ip);
        assert!(d1 > std::time::Duration::ZERO && d2 > d1, "{d1:?} {d2:?}");
        let other: std::net::IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(t.failed(other), std::time::Duration::ZERO);
    }

    #[test]
    fn tags_parse_from_rabbitmq_strings() {
        assert_eq!(
            parse_tags("administrator, monitoring"),
            vec!["administrator", "monitoring"]
        );
        assert!(parse_tags("").is_empty());
    }
}
