//! Changes to users, vhosts and permissions while the broker runs, for the management API
//! and `warrenctl`. Each change is committed to the store before it returns, so what an
//! administrator was told succeeded survives a crash. Connections notice permission changes
//! through `Permissions::generation` and vhost deletion through `VHost::deleted`; nothing
//! here speaks HTTP or AMQP.

use std::sync::Arc;

use super::auth::{hash_password, User};
use super::permissions::{Permission, TopicPermission};
use super::vhost::{VHost, VHostMeta};
use super::BrokerState;
use crate::store::{Definition, StoreOp};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminError {
    #[error("user '{0}' does not exist")]
    NoSuchUser(String),
    #[error("vhost '{0}' does not exist")]
    NoSuchVHost(String),
    #[error("{0}")]
    BadRequest(String),
}

/// How a user's password is given: in clear (hashed here), as a RabbitMQ hash, or none
/// (the user can then only log in with a client certificate).
#[derive(Debug, Clone)]
pub enum PasswordSpec {
    Clear(String),
    Hash(Vec<u8>),
    None,
}

fn user_definition(u: &User) -> Definition {
    Definition::User {
        name: u.name.clone(),
        password_hash: u.password_hash.clone(),
        tags: u.tags.clone(),
        limits: u.limits.clone(),
    }
}

fn permission_definition(p: &Permission) -> Definition {
    Definition::Permission {
        user: p.user.clone(),
        vhost: p.vhost.clone(),
        configure: p.configure.source.clone(),
        write: p.write.source.clone(),
        read: p.read.source.clone(),
    }
}

fn topic_definition(t: &TopicPermission) -> Definition {
    Definition::TopicPermission {
        user: t.user.clone(),
        vhost: t.vhost.clone(),
        exchange: t.exchange.clone(),
        write: t.write.clone(),
        read: t.read.clone(),
    }
}

impl BrokerState {
    async fn commit_definitions(&self, ops: Vec<StoreOp>) {
        if let (Some(store), false) = (&self.store, ops.is_empty()) {
            store.commit(ops).await;
        }
    }

    /// Every global parameter, by name, its value as JSON text.
    pub fn global_parameters(&self) -> Vec<(String, String)> {
        self.global_parameters
            .read()
            .map(|g| g.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    pub fn global_parameter(&self, name: &str) -> Option<String> {
        self.global_parameters.read().ok()?.get(name).cloned()
    }

    /// The cluster's name: as last set through the API (stored), else the configured one.
    pub fn cluster_name(&self) -> String {
        self.global_parameter("cluster_name")
            .and_then(|v| serde_json::from_str::<String>(&v).ok())
            .unwrap_or_else(|| self.config.cluster_name.clone())
    }

    /// Set (and store) a global parameter; `value` is JSON text.
    pub async fn set_global_parameter(&self, name: &str, value: String) {
        if let Ok(mut g) = self.global_parameters.write() {
            g.insert(name.to_owned(), value.clone());
        }
        let d = Definition::GlobalParameter {
            name: name.to_owned(),
            value,
        };
        self.commit_definitions(vec![StoreOp::PutDefinition(d)])
            .await;
    }

    /// Remove a global parameter; false when there was none.
    pub async fn clear_global_parameter(&self, name: &str) -> bool {
        let Some(value) = self
            .global_parameters
            .write()
            .ok()
            .and_then(|mut g| g.remove(name))
        else {
            return false;
        };
        let d = Definition::GlobalParameter {
            name: name.to_owned(),
            value,
        };
        self.commit_definitions(vec![StoreOp::DeleteDefinition(d)])
            .await;
        true
    }

    /// Create or replace a user; true when it was created.
    pub async fn put_user(
        &self,
        name: &str,
        password: PasswordSpec,
        tags: Vec<String>,
    ) -> Result<bool, AdminError> {
        if name.is_empty() {
            return Err(AdminError::BadRequest("user name must not be empty".into()));
        }
        let password_hash = match password {
            PasswordSpec::Clear(p) => hash_password(&p),
            PasswordSpec::Hash(h) if h.len() == 36 => h,
            PasswordSpec::Hash(_) => {
                return Err(AdminError::BadRequest(
                    "password_hash must be a base64 rabbit_password_hashing_sha256 hash".into(),
                ))
            }
            PasswordSpec::None => Vec::new(),
        };
        let existing = self.users.get(name);
        let created = existing.is_none();
        // limits are set on their own path (user-limits) and outlive a user's update
        let user = self.users.put(User {
            name: name.to_owned(),
            password_hash,
            tags,
            limits: existing.map(|u| u.limits).unwrap_or_default(),
        });
        self.commit_definitions(vec![StoreOp::PutDefinition(user_definition(&user))])
            .await;
        Ok(created)
    }

    pub async fn change_password(&self, name: &str, password: &str) -> Result<(), AdminError> {
        let mut user = self
            .users
            .get(name)
            .ok_or_else(|| AdminError::NoSuchUser(name.into()))?;
        user.password_hash = hash_password(password);
        let user = self.users.put(user);
        self.commit_definitions(vec![StoreOp::PutDefinition(user_definition(&user))])
            .await;
        Ok(())
    }

    pub async fn set_user_tags(&self, name: &str, tags: Vec<String>) -> Result<(), AdminError> {
        let mut user = self
            .users
            .get(name)
            .ok_or_else(|| AdminError::NoSuchUser(name.into()))?;
        user.tags = tags;
        let user = self.users.put(user);
        self.commit_definitions(vec![StoreOp::PutDefinition(user_definition(&user))])
            .await;
        Ok(())
    }

    /// Set (or with None clear) one of RabbitMQ's user limits: max-connections or
    /// max-channels; a negative value means no limit. Applies to the next connection or
    /// channel the user opens.
    pub async fn set_user_limit(
        &self,
        name: &str,
        limit: &str,
        value: Option<i64>,
    ) -> Result<(), AdminError> {
        if !["max-connections", "max-channels"].contains(&limit) {
            return Err(AdminError::BadRequest(format!(
                "unknown user limit '{limit}' (max-connections, max-channels)"
            )));
        }
        let mut user = self
            .users
            .get(name)
            .ok_or_else(|| AdminError::NoSuchUser(name.into()))?;
        user.limits.retain(|(n, _)| n != limit);
        if let Some(v) = value {
            user.limits.push((limit.to_owned(), v));
            user.limits.sort();
        }
        let user = self.users.put(user);
        self.commit_definitions(vec![StoreOp::PutDefinition(user_definition(&user))])
            .await;
        Ok(())
    }

    /// Delete a user and everything granted to it; its open connections are closed.
    pub async fn delete_user(&self, name: &str) -> Result<(), AdminError> {
        let user = self
            .users
            .remove(name)
            .ok_or_else(|| AdminError::NoSuchUser(name.into()))?;
        let mut ops = vec![StoreOp::DeleteDefinition(user_definition(&user))];
        ops.extend(self.access_ops(|u, _| u == name));
        self.permissions.remove_where(|u, _| u == name);
        self.commit_definitions(ops).await;
        // as RabbitMQ: the deleted user's connections are closed
        self.users_deleted.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Store deletions for the permissions matching `pred(user, vhost)`.
    fn access_ops(&self, pred: impl Fn(&str, &str) -> bool) -> Vec<StoreOp> {
        let mut ops: Vec<StoreOp> = self
            .permissions
            .list(|p| pred(&p.user, &p.vhost))
            .iter()
            .map(|p| StoreOp::DeleteDefinition(permission_definition(p)))
            .collect();
        ops.extend(
            self.permissions
                .list_topic(|t| pred(&t.user, &t.vhost))
                .iter()
                .map(|t| StoreOp::DeleteDefinition(topic_definition(t))),
        );
        ops
    }

    /// Create a vhost, or update its description and tags; true when it was created.
    pub async fn add_vhost(&self, name: &str, meta: VHostMeta) -> Result<bool, AdminError> {
        if name.is_empty() {
            return Err(AdminError::BadRequest(
                "vhost name must not be empty".into(),
            ));
        }
        let (vhost, created) = match self.vhost(name) {
            Some(v) => (v, false),
            None => {
                let v = VHost::new(
                    name,
                    self.store.clone(),
                    self.config.queue_ram_limit as usize,
                    self.config.vhost_max_queues as usize,
                    self.metrics.clone(),
                    self.clock.clone(),
                );
                (
                    self.vhosts.entry(name.to_owned()).or_insert(v).clone(),
                    true,
                )
            }
        };
        vhost.set_meta(meta);
        self.commit_definitions(vec![StoreOp::PutDefinition(vhost.definition())])
            .await;
        Ok(created)
    }

    /// Delete a vhost: its connections are closed, its queues (with their messages),
    /// exchanges, bindings and the permissions on it go.
    pub async fn delete_vhost(&self, name: &str) -> Result<(), AdminError> {
        let (_, vhost): (String, Arc<VHost>) = self
            .vhosts
            .remove(name)
            .ok_or_else(|| AdminError::NoSuchVHost(name.into()))?;
        vhost.delete_everything().await;
        let mut ops = vec![StoreOp::DeleteDefinition(vhost.definition())];
        ops.extend(vhost.policy_removals());
        ops.extend(self.access_ops(|_, v| v == name));
        self.permissions.remove_where(|_, v| v == name);
        self.commit_definitions(ops).await;
        tracing::info!(vhost = %name, "vhost deleted");
        Ok(())
    }

    /// Set (or with None clear) one of RabbitMQ's vhost limits: max-connections or
    /// max-queues; negative means unlimited. Applies to the next connection or declare.
    pub async fn set_vhost_limit(
        &self,
        vhost: &str,
        name: &str,
        value: Option<i64>,
    ) -> Result<(), AdminError> {
        if !["max-connections", "max-queues"].contains(&name) {
            return Err(AdminError::BadRequest(format!(
                "unknown vhost limit '{name}' (max-connections, max-queues)"
            )));
        }
        let v = self
            .vhost(vhost)
            .ok_or_else(|| AdminError::NoSuchVHost(vhost.into()))?;
        let mut meta = v.meta();
        match value {
            Some(n) => meta.limits.insert(name.to_owned(), n),
            None => meta.limits.remove(name),
        };
        v.set_meta(meta);
        self.commit_definitions(vec![StoreOp::PutDefinition(v.definition())])
            .await;
        Ok(())
    }

    fn user_and_vhost_exist(&self, user: &str, vhost: &str) -> Result<(), AdminError> {
        if self.users.get(user).is_none() {
            return Err(AdminError::NoSuchUser(user.into()));
        }
        if self.vhost(vhost).is_none() {
            return Err(AdminError::NoSuchVHost(vhost.into()));
        }
        Ok(())
    }

    /// Set a user's permissions on a vhost; true when none were set before.
    pub async fn set_permissions(
        &self,
        user: &str,
        vhost: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<bool, AdminError> {
        self.user_and_vhost_exist(user, vhost)?;
        let p = Permission::new(user, vhost, configure, write, read)
            .map_err(|e| AdminError::BadRequest(format!("invalid regular expression: {e}")))?;
        let created = self.permissions.get(user, vhost).is_none();
        let def = permission_definition(&p);
        self.permissions.set(p);
        self.commit_definitions(vec![StoreOp::PutDefinition(def)])
            .await;
        Ok(created)
    }

    /// Revoke a user's permissions on a vhost; its next operation there is refused.
    pub async fn clear_permissions(&self, user: &str, vhost: &str) -> Result<(), AdminError> {
        self.user_and_vhost_exist(user, vhost)?;
        if let Some(p) = self.permissions.clear(user, vhost) {
            self.commit_definitions(vec![StoreOp::DeleteDefinition(permission_definition(&p))])
                .await;
        }
        Ok(())
    }

    pub async fn set_topic_permissions(&self, t: TopicPermission) -> Result<(), AdminError> {
        self.user_and_vhost_exist(&t.user, &t.vhost)?;
        let def = topic_definition(&t);
        self.permissions
            .set_topic(t)
            .map_err(|e| AdminError::BadRequest(format!("invalid regular expression: {e}")))?;
        self.commit_definitions(vec![StoreOp::PutDefinition(def)])
            .await;
        Ok(())
    }

    pub async fn clear_topic_permissions(
        &self,
        user: &str,
        vhost: &str,
        exchange: Option<&str>,
    ) -> Result<(), AdminError> {
        self.user_and_vhost_exist(user, vhost)?;
        let ops: Vec<StoreOp> = self
            .permissions
            .list_topic(|t| {
                t.user == user && t.vhost == vhost && exchange.is_none_or(|x| t.exchange == x)
            })
            .iter()
            .map(|t| StoreOp::DeleteDefinition(topic_definition(t)))
            .collect();
        self.permissions.clear_topic(user, vhost, exchange);
        self.commit_definitions(ops).await;
        Ok(())
    }
}
