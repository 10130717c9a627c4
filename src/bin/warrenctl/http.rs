//! The few HTTP calls warrenctl makes: JSON over basic auth to the management API, path
//! segments percent-encoded (the default vhost "/" is "%2F"), failures mapped to
//! rabbitmqctl's exit codes.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ApiFailure {
    #[error("unable to reach the management API at {url}: {why}")]
    Unavailable { url: String, why: String },
    #[error("not authorised: {0}")]
    NotAuthorised(String),
    #[error("{0}")]
    Data(String),
    /// A command line the command cannot run (an unknown info item).
    #[error("{0}")]
    Usage(String),
    /// The broker refused the change (a policy that fails its checks, clearing one that
    /// is not there): rabbitmqctl's general error exit.
    #[error("{0}")]
    Refused(String),
}

impl ApiFailure {
    /// sysexits as rabbitmqctl uses them: 69 unavailable (and refused), 77 no permission,
    /// 65 bad data, 64 usage.
    pub fn exit_code(&self) -> u8 {
        match self {
            ApiFailure::Unavailable { .. } | ApiFailure::Refused(_) => 69,
            ApiFailure::NotAuthorised(_) => 77,
            ApiFailure::Data(_) => 65,
            ApiFailure::Usage(_) => 64,
        }
    }
}

pub struct Api {
    base: String,
    auth: String,
    agent: ureq::Agent,
}

fn encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Api {
    pub fn new(base: &str, user: &str, password: &str) -> Self {
        use base64::Engine;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            agent,
        }
    }

    fn url(&self, path: &[&str]) -> String {
        let segments: Vec<String> = path.iter().map(|s| encode(s)).collect();
        format!("{}/api/{}", self.base, segments.join("/"))
    }

    /// One request; Ok(None) for 404, the parsed body (or Null) for 2xx.
    fn call(
        &self,
        method: &str,
        path: &[&str],
        body: Option<Value>,
    ) -> Result<Option<Value>, ApiFailure> {
        self.request(method, path, "", None, body)
    }

    /// A request with a query string (`if-empty=true`) and one extra header (`X-Reason`).
    pub fn request(
        &self,
        method: &str,
        path: &[&str],
        query: &str,
        header: Option<(&str, &str)>,
        body: Option<Value>,
    ) -> Result<Option<Value>, ApiFailure> {
        let mut url = self.url(path);
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let unavailable = |e: ureq::Error| ApiFailure::Unavailable {
            url: self.base.clone(),
            why: e.to_string(),
        };
        let result = match method {
            "GET" | "DELETE" => {
                let mut req = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                }
                .header("Authorization", &self.auth);
                if let Some((name, value)) = header {
                    req = req.header(name, value);
                }
                req.call()
            }
            _ => {
                let mut req = if method == "POST" {
                    self.agent.post(&url)
                } else {
                    self.agent.put(&url)
                }
                .header("Authorization", &self.auth);
                if let Some((name, value)) = header {
                    req = req.header(name, value);
                }
                req.send_json(body.unwrap_or(Value::Null))
            }
        };
        let mut response = result.map_err(unavailable)?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(unavailable)?;
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let reason = || parsed["reason"].as_str().unwrap_or(&text).to_owned();
        match status {
            200..=299 => Ok(Some(parsed)),
            404 => Ok(None),
            401 | 403 => Err(ApiFailure::NotAuthorised(reason())),
            _ => Err(ApiFailure::Data(reason())),
        }
    }

    pub fn get(&self, path: &[&str]) -> Result<Option<Value>, ApiFailure> {
        self.call("GET", path, None)
    }

    pub fn list(&self, path: &[&str]) -> Result<Vec<Value>, ApiFailure> {
        match self.get(path)? {
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Ok(Vec::new()),
            None => Err(ApiFailure::Data(format!(
                "{} does not exist",
                path.join("/")
            ))),
        }
    }

    pub fn put(&self, path: &[&str], body: Value) -> Result<(), ApiFailure> {
        self.call("PUT", path, Some(body)).map(|_| ())
    }

    pub fn delete(&self, path: &[&str]) -> Result<Option<()>, ApiFailure> {
        Ok(self.call("DELETE", path, None)?.map(|_| ()))
    }

    pub fn post(&self, path: &[&str], body: Value) -> Result<Option<Value>, ApiFailure> {
        self.call("POST", path, Some(body))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_vhost_is_percent_encoded() {
        assert_eq!(super::encode("/"), "%2F");
        assert_eq!(super::encode("shop-1.eu"), "shop-1.eu");
        assert_eq!(super::encode("a b"), "a%20b");
    }
}
