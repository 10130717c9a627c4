//! Topic routing with RabbitMQ's rules: words split on '.', `*` matches exactly one word,
//! `#` matches zero or more words; empty words are words ("a..b"). Binding keys live in a
//! trie of words, so a routing key is matched against every binding at once: the cost
//! follows the key's length and the trie nodes it reaches, not the number of bindings,
//! and binding or unbinding one key touches only its own path.

use std::collections::HashMap;

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    star: Option<Box<Node>>,
    hash: Option<Box<Node>>,
    /// Reached through a `#`: it may swallow any number of further words itself.
    is_hash: bool,
    /// Bindings whose key ends here, by the exchange's binding ids.
    bindings: Vec<u64>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.bindings.is_empty()
            && self.children.is_empty()
            && self.star.is_none()
            && self.hash.is_none()
    }

    fn child_mut(&mut self, word: &str) -> &mut Node {
        match word {
            "*" => self.star.get_or_insert_with(Default::default),
            "#" => self.hash.get_or_insert_with(|| {
                Box::new(Node {
                    is_hash: true,
                    ..Default::default()
                })
            }),
            w => self.children.entry(w.into()).or_default(),
        }
    }

    /// Remove `id` under the path `words`; true when this node is left empty.
    fn remove(&mut self, words: &[&str], id: u64) -> bool {
        match words.split_first() {
            None => self.bindings.retain(|b| *b != id),
            Some((word, rest)) => {
                let emptied = match *word {
                    "*" => self.star.as_mut().is_some_and(|n| n.remove(rest, id)),
                    "#" => self.hash.as_mut().is_some_and(|n| n.remove(rest, id)),
                    w => self.children.get_mut(w).is_some_and(|n| n.remove(rest, id)),
                };
                if emptied {
                    match *word {
                        "*" => self.star = None,
                        "#" => self.hash = None,
                        w => {
                            self.children.remove(w);
                        }
                    }
                }
            }
        }
        self.is_empty()
    }
}

/// Every topic binding key of one exchange.
#[derive(Debug, Default)]
pub struct Trie {
    root: Node,
}

fn push_unique<'a>(states: &mut Vec<&'a Node>, n: &'a Node) {
    if !states.iter().any(|s| std::ptr::eq(*s, n)) {
        states.push(n);
    }
}

/// Add the `#` nodes reachable without consuming a word (a `#` may match none).
fn close_hashes(states: &mut Vec<&Node>) {
    let mut i = 0;
    while i < states.len() {
        if let Some(h) = states[i].hash.as_deref() {
            push_unique(states, h);
        }
        i += 1;
    }
}

impl Trie {
    pub fn insert(&mut self, binding_key: &str, id: u64) {
        let mut node = &mut self.root;
        for word in binding_key.split('.') {
            node = node.child_mut(word);
        }
        node.bindings.push(id);
    }

    pub fn remove(&mut self, binding_key: &str, id: u64) {
        let words: Vec<&str> = binding_key.split('.').collect();
        self.root.remove(&words, id);
    }

    /// Call `found` with the id of every binding whose key matches `routing_key`, once.
    /// The set of live nodes never holds one node twice, so keys full of `#` cost no more
    /// than the trie's size per word.
    pub fn route(&self, routing_key: &str, mut found: impl FnMut(u64)) {
        let mut states: Vec<&Node> = vec![&self.root];
        close_hashes(&mut states);
        let mut next: Vec<&Node> = Vec::new();
        for word in routing_key.split('.') {
            next.clear();
            for s in &states {
                if let Some(c) = s.children.get(word) {
                    push_unique(&mut next, c);
                }
                if let Some(c) = s.star.as_deref() {
                    push_unique(&mut next, c);
                }
                if s.is_hash {
                    push_unique(&mut next, s);
                }
            }
            close_hashes(&mut next);
            if next.is_empty() {
                return;
            }
            std::mem::swap(&mut states, &mut next);
        }
        for s in states {
            for id in &s.bindings {
                found(*id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, key: &str) -> bool {
        let mut t = Trie::default();
        t.insert(pattern, 1);
        let mut hit = false;
        t.route(key, |_| hit = true);
        hit
    }

    /// The cases from RabbitMQ's own topic exchange tests (rabbit_exchange_type_topic),
    /// expressed as (binding key, routing key, expected).
    #[test]
    fn rabbitmq_topic_rules() {
        let cases = [
            ("a.b.c", "a.b.c", true),
            ("a.*.c", "a.b.c", true),
            ("a.#.b", "a.b", true),
            ("a.#.b", "a.x.y.b", true),
            ("#", "", true),
            ("#", "a", true),
            ("#", "a.b.c", true),
            ("*", "", true),
            ("*", "a", true),
            ("*", "a.b", false),
            ("a.*", "a", false),
            ("a.*", "a.b", true),
            ("a.*", "a.b.c", false),
            ("a.#", "a", true),
            ("a.#", "a.b.c", true),
            ("#.a", "a", true),
            ("#.a", "x.y.a", true),
            ("#.a", "a.x", false),
            ("#.#", "", true),
            ("#.#", "a.b", true),
            ("*.#", "", true),
            ("*.#", "a", true),
            ("*.*", "a", false),
            ("*.*", "a.b", true),
            ("a.#.#.b", "a.b", true),
            ("a.#.*.b", "a.b", false),
            ("a.#.*.b", "a.c.b", true),
            ("#.*.#", "a", true),
            ("#.*.#", "", true),
            ("a..b", "a..b", true),
            ("a.*.b", "a..b", true),
            ("", "", true),
            ("", "a", false),
            ("a", "", false),
            ("a.b", "a.b.c", false),
            ("a.b.c", "a.b", false),
            ("*.b.*", "a.b.c", true),
            ("#.b.#", "b", true),
            ("#.b.#", "x.b.y.z", true),
            ("#.b.#", "x.c.y", false),
            ("kern.*", "kern.critical", true),
            ("*.critical", "kern.critical", true),
            ("*.orange.*", "quick.orange.rabbit", true),
            ("*.*.rabbit", "lazy.orange.elephant", false),
            ("lazy.#", "lazy.orange.male.rabbit", true),
            ("*.orange.*", "quick.orange.male.rabbit", false),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(m(pattern, key), expected, "{pattern:?} vs {key:?}");
        }
    }

    #[test]
    fn bindings_share_paths_and_leave_without_disturbing_the_rest() {
        let mut t = Trie::default();
        t.insert("order.*.created", 1);
        t.insert("order.#", 2);
        t.insert("order.eu.created", 3);
        t.insert("#", 4);
        let ids = |t: &Trie, key: &str| {
            let mut v = Vec::new();
            t.route(key, |id| v.push(id));
            v.sort();
            v.dedup();
            v
        };
        assert_eq!(ids(&t, "order.eu.created"), [1, 2, 3, 4]);
        assert_eq!(ids(&t, "stock.low"), [4]);
        t.remove("order.#", 2);
        t.remove("#", 4);
        assert_eq!(ids(&t, "order.eu.created"), [1, 3]);
        assert_eq!(ids(&t, "order.eu"), Vec::<u64>::new());
        t.remove("order.*.created", 1);
        t.remove("order.eu.created", 3);
        assert!(t.root.is_empty(), "emptied paths are pruned");
    }

    #[test]
    fn many_hashes_do_not_explode() {
        let pattern = "#.".repeat(200) + "x";
        let key = "a.".repeat(200) + "y";
        assert!(!m(&pattern, &key));
    }
}
