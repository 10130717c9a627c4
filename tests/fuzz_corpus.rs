//! Every input the fuzzers kept (fuzz/corpus/TARGET) and every crash they ever found
//! (fuzz/regressions/TARGET) replayed through the same entry points, without a fuzzer: a
//! parser change that brings back an old crash fails here, in the normal suite.

use std::path::Path;

use warren::protocol::fuzzing::TARGETS;

fn replay(dir: &Path, target: fn(&[u8])) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        // a panic names the file, so it can be run under the fuzzer again
        let result = std::panic::catch_unwind(|| target(&data));
        assert!(result.is_ok(), "{} panicked", path.display());
        n += 1;
    }
    n
}

#[test]
fn the_kept_corpus_and_past_crashes_run_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, target) in TARGETS {
        let corpus = replay(&root.join("corpus").join(name), *target);
        let regressions = replay(&root.join("regressions").join(name), *target);
        assert!(corpus > 0, "fuzz/corpus/{name} is empty or missing");
        eprintln!("{name}: {corpus} corpus inputs, {regressions} past crashes");
    }
}

#[test]
fn a_table_nested_deeper_than_the_stack_allows_is_refused_not_followed() {
    // the crash issue 5 found by hand, kept here in the fuzzer's terms: 20,000 nested
    // tables would overflow the stack of amq-protocol's recursive decoder
    let mut t = Vec::new();
    for _ in 0..20_000 {
        let mut outer = vec![1, b'a', b'F'];
        outer.extend_from_slice(&(t.len() as u32).to_be_bytes());
        outer.extend_from_slice(&t);
        t = outer;
    }
    let mut framed = (t.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&t);
    warren::protocol::fuzzing::field_table(&framed);
}
