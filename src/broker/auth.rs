//! Users and their credentials. Passwords are kept as salted SHA-256 hashes in RabbitMQ's
//! `rabbit_password_hashing_sha256` layout (4-byte salt ++ sha256(salt ++ password)), so
//! definitions exported from RabbitMQ can later import unchanged. Never logs a password.

use dashmap::DashMap;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    /// salt (4 bytes) followed by sha256(salt ++ password)
    pub password_hash: Vec<u8>,
}

fn hash_with_salt(salt: [u8; 4], password: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&h.finalize());
    out
}

#[derive(Debug, Default)]
pub struct Users {
    users: DashMap<String, User>,
}

impl Users {
    pub fn add(&self, name: &str, password: &str) {
        let salt: [u8; 4] = rand::random();
        self.users.insert(
            name.to_owned(),
            User {
                name: name.to_owned(),
                password_hash: hash_with_salt(salt, password),
            },
        );
    }

    /// A user whose hash came from the store (or a definitions import).
    pub fn add_hashed(&self, name: &str, password_hash: Vec<u8>) {
        self.users.insert(
            name.to_owned(),
            User {
                name: name.to_owned(),
                password_hash,
            },
        );
    }

    pub fn password_hash(&self, name: &str) -> Option<Vec<u8>> {
        self.users.get(name).map(|u| u.password_hash.clone())
    }

    /// True when the user exists and the password is right.
    pub fn check(&self, name: &str, password: &str) -> bool {
        let Some(user) = self.users.get(name) else {
            return false;
        };
        if user.password_hash.len() != 36 {
            return false;
        }
        let salt = [
            user.password_hash[0],
            user.password_hash[1],
            user.password_hash[2],
            user.password_hash[3],
        ];
        let candidate = hash_with_salt(salt, password);
        // constant-time comparison: no early exit on the first differing byte
        candidate
            .iter()
            .zip(user.password_hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_password_passes_and_wrong_one_fails() {
        let users = Users::default();
        users.add("guest", "guest");
        assert!(users.check("guest", "guest"));
        assert!(!users.check("guest", "nope"));
        assert!(!users.check("nobody", "guest"));
    }
}
