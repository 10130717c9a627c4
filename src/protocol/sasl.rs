//! SASL responses from connection.start-ok: PLAIN ("\0user\0pass") and RabbitMQ's
//! AMQPLAIN (a field table without its length prefix holding LOGIN and PASSWORD).

use amq_protocol::types::{parsing::parse_field_table, AMQPValue};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

pub const MECHANISMS: &str = "PLAIN AMQPLAIN";

/// `None` when the mechanism is unknown or the response is malformed.
pub fn parse_response(mechanism: &str, response: &[u8]) -> Option<Credentials> {
    match mechanism {
        "PLAIN" => {
            let mut parts = response.split(|b| *b == 0);
            let _authzid = parts.next()?;
            let user = parts.next()?;
            let pass = parts.next()?;
            if parts.next().is_some() {
                return None;
            }
            Some(Credentials {
                username: String::from_utf8(user.to_vec()).ok()?,
                password: String::from_utf8(pass.to_vec()).ok()?,
            })
        }
        "AMQPLAIN" => {
            let mut framed = (response.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(response);
            super::table::check(&framed).ok()?;
            let (_, table) = parse_field_table(framed.as_slice()).ok()?;
            let text = |k: &str| match table.inner().get(k)? {
                AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok(),
                AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
                _ => None,
            };
            Some(Credentials {
                username: text("LOGIN")?,
                password: text("PASSWORD")?,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_response() {
        let c = parse_response("PLAIN", b"\0guest\0secret").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("guest", "secret")
        );
        assert!(parse_response("PLAIN", b"guest").is_none());
    }

    #[test]
    fn amqplain_response() {
        let mut r = vec![];
        for (k, v) in [("LOGIN", "guest"), ("PASSWORD", "pw")] {
            r.push(k.len() as u8);
            r.extend_from_slice(k.as_bytes());
            r.push(b'S');
            r.extend_from_slice(&(v.len() as u32).to_be_bytes());
            r.extend_from_slice(v.as_bytes());
        }
        let c = parse_response("AMQPLAIN", &r).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("guest", "pw"));
    }

    #[test]
    fn unknown_mechanism_is_refused() {
        assert!(parse_response("EXTERNAL", b"").is_none());
    }
}
