//! A management-API client for tests: JSON over basic auth, answers as (status, body).

use serde_json::Value;

pub struct Api {
    base: String,
    auth: String,
    agent: ureq::Agent,
}

impl Api {
    pub fn new(base: &str, user: &str, password: &str) -> Self {
        use base64::Engine;
        Self {
            base: base.to_owned(),
            auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }

    fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
        let mut r = r.expect("HTTP request reaches the broker");
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Blocking calls, run off the async runtime's worker.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let req = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", &self.auth);
        tokio::task::block_in_place(|| Self::finish(req.call()))
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let req = self
            .agent
            .put(format!("{}{path}", self.base))
            .header("Authorization", &self.auth);
        tokio::task::block_in_place(|| Self::finish(req.send_json(body)))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (status, body, _) = self.post_with_location(path, body).await;
        (status, body)
    }

    /// A POST whose answer's `Location` header matters (creating a binding).
    pub async fn post_with_location(
        &self,
        path: &str,
        body: Value,
    ) -> (u16, Value, Option<String>) {
        let req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", &self.auth);
        tokio::task::block_in_place(|| {
            let mut r = req
                .send_json(body)
                .expect("HTTP request reaches the broker");
            let location = r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let status = r.status().as_u16();
            let text = r.body_mut().read_to_string().unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::Null),
                location,
            )
        })
    }

    /// A DELETE with one extra header (RabbitMQ's `X-Reason` when closing a connection).
    pub async fn delete_with(&self, path: &str, header: &str, value: &str) -> (u16, Value) {
        let req = self
            .agent
            .delete(format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .header(header, value);
        tokio::task::block_in_place(|| Self::finish(req.call()))
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let req = self
            .agent
            .delete(format!("{}{path}", self.base))
            .header("Authorization", &self.auth);
        tokio::task::block_in_place(|| Self::finish(req.call()))
    }
}
