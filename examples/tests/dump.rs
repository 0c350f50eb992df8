//! The `dump` example finds the three bugs it hides: this runs it and reads
//! both what it prints and the dump it writes as JSON.

use serde_json::Value;
use std::process::Command;

#[test]
fn the_dump_example_finds_the_deadlock_the_silent_channel_and_the_blocking_call() {
    let dir = std::env::temp_dir().join(format!("weft-dump-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json_path = dir.join("dump.json");
    let out = Command::new(env!("CARGO_BIN_EXE_dump"))
        .arg("--json")
        .arg(&json_path)
        .output()
        .expect("the dump example runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let dump: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stuck = dump["stuck"].as_array().expect("a stuck list");
    let named = |kind: &str, name: &str| {
        stuck
            .iter()
            .find(|s| s["kind"] == kind && s["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} entry for {name:?} in the dump:\n{text}"))
    };

    // 3: the worker blocked in the report task's poll, named with its line.
    let report = named("blocked_worker", "report");
    assert!(report["for_us"].as_u64().unwrap() >= 200_000, "{text}");
    assert_eq!(report["location"]["file"], "examples/src/bin/dump.rs");

    // 1: each transfer waits on the lock of the account the other holds.
    let (a, b) = account_addresses(&text);
    for (name, waits_on) in [("transfer a→b", b), ("transfer b→a", a)] {
        let entry = named("idle", name);
        assert_eq!(entry["wait"]["kind"], "sync", "{text}");
        assert_eq!(entry["wait"]["primitive"], "Mutex::lock", "{text}");
        assert_eq!(entry["wait"]["address"], format!("{waits_on:#x}"), "{name}: {text}");
        assert!(entry["idle_us"].as_u64().unwrap() >= 500_000, "{text}");
    }

    // 2: the audit task on a channel nobody sends to.
    let audit = named("idle", "audit");
    assert_eq!(audit["wait"]["primitive"], "mpsc::Receiver::recv", "{text}");

    // The healthy tasks are not stuck, and the table says it all in words.
    for healthy in ["listener", "client", "ticker"] {
        assert!(
            !stuck.iter().any(|s| s["name"] == healthy),
            "{healthy} reported stuck:\n{text}"
        );
    }
    assert!(text.contains("has been inside one poll of task"), "{text}");
    assert!(
        text.contains("\"report\" (spawned at examples/src/bin/dump.rs:"),
        "{text}"
    );
    assert!(text.contains("waiting on Mutex::lock @"), "{text}");
    assert!(text.contains("waiting on mpsc::Receiver::recv @"), "{text}");
}

/// The addresses of the two accounts' locks, from the example's last lines.
fn account_addresses(text: &str) -> (u64, u64) {
    let line = text
        .lines()
        .find(|l| l.starts_with("account a's lock is at "))
        .expect("the example prints the accounts' addresses");
    let hex: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').strip_prefix("0x"))
        .map(|h| u64::from_str_radix(h, 16).unwrap())
        .collect();
    (hex[0], hex[1])
}
