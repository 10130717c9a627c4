//! Topic routing-key matching with RabbitMQ's rules: words split on '.', `*` matches
//! exactly one word, `#` matches zero or more words. Empty words are words ("a..b").

/// A binding key split into words once, when the binding is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    words: Vec<String>,
}

impl TopicPattern {
    pub fn new(binding_key: &str) -> Self {
        Self {
            words: binding_key.split('.').map(str::to_owned).collect(),
        }
    }

    pub fn matches(&self, routing_key: &str) -> bool {
        let key: Vec<&str> = routing_key.split('.').collect();
        let pat: Vec<&str> = self.words.iter().map(String::as_str).collect();
        matches_words(&pat, &key)
    }
}

/// Iterative match with backtracking to the last `#` (linear in practice, no recursion
/// depth a hostile key could blow up).
fn matches_words(pat: &[&str], key: &[&str]) -> bool {
    // dp over pattern positions reachable after consuming i words of the key
    let mut reach = vec![false; pat.len() + 1];
    reach[0] = true;
    // `#` may match zero words: close over them before consuming anything
    close_hashes(pat, &mut reach);
    for word in key {
        let mut next = vec![false; pat.len() + 1];
        for (p, ok) in reach.iter().enumerate() {
            if !*ok || p == pat.len() {
                continue;
            }
            match pat[p] {
                "#" => {
                    next[p] = true; // # consumes this word and stays
                    next[p + 1] = true; // # consumes this word and ends
                }
                "*" => next[p + 1] = true,
                w if w == *word => next[p + 1] = true,
                _ => {}
            }
        }
        close_hashes(pat, &mut next);
        if !next.iter().any(|b| *b) {
            return false;
        }
        reach = next;
    }
    reach[pat.len()]
}

fn close_hashes(pat: &[&str], reach: &mut [bool]) {
    for p in 0..pat.len() {
        if reach[p] && pat[p] == "#" {
            reach[p + 1] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, key: &str) -> bool {
        TopicPattern::new(pattern).matches(key)
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
    fn many_hashes_do_not_explode() {
        let pattern = "#.".repeat(200) + "x";
        let key = "a.".repeat(200) + "y";
        assert!(!m(&pattern, &key));
    }
}
