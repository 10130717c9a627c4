//! List query parameters as RabbitMQ's management API takes them: `name` with `use_regex`,
//! `sort` / `sort_reverse`, `page` / `page_size` (answered with RabbitMQ's pagination
//! object) and `columns`. Pure: it shapes a list of JSON objects it is given.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::ApiError;

/// RabbitMQ refuses pages larger than this.
const MAX_PAGE_SIZE: usize = 500;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub name: Option<String>,
    pub use_regex: Option<String>,
    pub sort: Option<String>,
    pub sort_reverse: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
    pub columns: Option<String>,
}

/// A dotted column or sort key (`message_stats.publish`) in one object.
fn lookup<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(item, |v, key| v.get(key))
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// Only the asked columns, nested where the column is dotted.
fn select(item: &Value, columns: &[&str]) -> Value {
    let mut out = Map::new();
    for column in columns {
        let Some(v) = lookup(item, column) else {
            continue;
        };
        let mut parts = column.split('.').peekable();
        let mut target = &mut out;
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                target.insert(part.to_owned(), v.clone());
            } else {
                let next = target
                    .entry(part.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(m) = next else { break };
                target = m;
            }
        }
    }
    Value::Object(out)
}

fn positive(value: &Option<String>, what: &str, default: usize) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "{what} must be a positive integer, got {s}"
            ))),
        },
    }
}

/// The list filtered, sorted, paged and cut to columns as the query asks.
pub fn shape(mut items: Vec<Value>, q: &ListQuery) -> Result<Value, ApiError> {
    let total = items.len();
    if let Some(name) = q.name.as_deref().filter(|n| !n.is_empty()) {
        let name_of = |v: &Value| {
            v.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        if q.use_regex.as_deref() == Some("true") {
            let re = regex::Regex::new(name)
                .map_err(|e| ApiError::bad_request(format!("invalid regex {name}: {e}")))?;
            items.retain(|v| re.is_match(&name_of(v)));
        } else {
            let needle = name.to_lowercase();
            items.retain(|v| name_of(v).to_lowercase().contains(&needle));
        }
    }
    if let Some(key) = q.sort.as_deref().filter(|k| !k.is_empty()) {
        items.sort_by(|a, b| compare(lookup(a, key), lookup(b, key)));
    }
    if q.sort_reverse.as_deref() == Some("true") {
        items.reverse();
    }
    let columns: Vec<&str> = q
        .columns
        .as_deref()
        .map(|c| c.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let cut = |list: Vec<Value>| -> Vec<Value> {
        if columns.is_empty() {
            list
        } else {
            list.iter().map(|v| select(v, &columns)).collect()
        }
    };
    if q.page.is_none() {
        return Ok(Value::Array(cut(items)));
    }
    let page = positive(&q.page, "page", 1)?;
    let page_size = positive(&q.page_size, "page_size", 100)?;
    if page_size > MAX_PAGE_SIZE {
        return Err(ApiError::bad_request(format!(
            "page_size must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    let filtered = items.len();
    let page_count = filtered.div_ceil(page_size).max(1);
    if page > page_count {
        return Err(ApiError::bad_request(format!(
            "page out of range, page: {page} page size: {page_size}, len: {filtered}"
        )));
    }
    let items: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .collect();
    Ok(json!({
        "filtered_count": filtered,
        "item_count": items.len(),
        "items": cut(items),
        "page": page,
        "page_count": page_count,
        "page_size": page_size,
        "total_count": total,
    }))
}

pub fn paginate(items: Vec<Value>, q: &ListQuery) -> Result<Response, ApiError> {
    shape(items, q).map(|v| Json(v).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues() -> Vec<Value> {
        (1..=5)
            .map(|i| json!({"name": format!("orders-{i}"), "messages": 10 - i, "message_stats": {"publish": i}}))
            .collect()
    }

    #[test]
    fn pages_come_with_rabbitmqs_counts() {
        let q = ListQuery {
            page: Some("2".into()),
            page_size: Some("2".into()),
            sort: Some("messages".into()),
            ..Default::default()
        };
        let v = shape(queues(), &q).unwrap();
        assert_eq!(v["page_count"], 3);
        assert_eq!(v["total_count"], 5);
        assert_eq!(v["item_count"], 2);
        assert_eq!(v["items"][0]["name"], "orders-3");
    }

    #[test]
    fn a_regex_filters_and_columns_cut_nested_fields() {
        let q = ListQuery {
            name: Some("^orders-[12]$".into()),
            use_regex: Some("true".into()),
            columns: Some("name,message_stats.publish".into()),
            ..Default::default()
        };
        let v = shape(queues(), &q).unwrap();
        assert_eq!(
            v,
            json!([
                {"name": "orders-1", "message_stats": {"publish": 1}},
                {"name": "orders-2", "message_stats": {"publish": 2}}
            ])
        );
    }

    #[test]
    fn a_page_past_the_end_is_a_bad_request() {
        let q = ListQuery {
            page: Some("9".into()),
            ..Default::default()
        };
        assert!(shape(queues(), &q).is_err());
    }
}
