//! The layering, checked on the source: `storage` uses nothing of ours but `domain` and
//! `clock`, and `domain` and `clock` nothing but themselves. (A `use` of a module above would compile; this fails.)

/// The `crate::…` modules a source text names.
fn modules_named(source: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for (i, _) in source.match_indices("crate::") {
        let rest = &source[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn assert_uses_only(layer: &str, files: &[(&str, &str)], allowed: &[&str]) {
    for (file, source) in files {
        for module in modules_named(source) {
            assert!(
                allowed.contains(&module.as_str()),
                "{layer}/{file} names crate::{module}: {layer} may use only {allowed:?}"
            );
        }
    }
}

#[test]
fn storage_uses_nothing_above_it() {
    assert_uses_only(
        "storage",
        &[
            ("mod.rs", include_str!("mod.rs")),
            ("barrier.rs", include_str!("barrier.rs")),
            ("codec.rs", include_str!("codec.rs")),
            ("journal.rs", include_str!("journal.rs")),
            ("keys.rs", include_str!("keys.rs")),
        ],
        &["storage", "domain", "clock"],
    );
}

#[test]
fn the_clock_uses_nothing_of_ours() {
    assert_uses_only(
        "clock",
        &[("clock.rs", include_str!("../clock.rs"))],
        &["clock"],
    );
}

#[test]
fn domain_uses_nothing_but_itself() {
    assert_uses_only(
        "domain",
        &[
            ("mod.rs", include_str!("../domain/mod.rs")),
            ("cart.rs", include_str!("../domain/cart.rs")),
            ("customer.rs", include_str!("../domain/customer.rs")),
            ("event.rs", include_str!("../domain/event.rs")),
            ("history.rs", include_str!("../domain/history.rs")),
            ("import.rs", include_str!("../domain/import.rs")),
            ("inventory.rs", include_str!("../domain/inventory.rs")),
            ("notification.rs", include_str!("../domain/notification.rs")),
            ("order.rs", include_str!("../domain/order.rs")),
            ("payment.rs", include_str!("../domain/payment.rs")),
            ("pricing.rs", include_str!("../domain/pricing.rs")),
            ("promotion.rs", include_str!("../domain/promotion.rs")),
            ("webhook.rs", include_str!("../domain/webhook.rs")),
            ("product.rs", include_str!("../domain/product.rs")),
        ],
        &["domain"],
    );
}

#[test]
fn the_check_sees_a_module_above() {
    let names = modules_named("use crate::engine::Engine; let x = crate::domain::now();");
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["domain", "engine"]);
}

#[test]
fn only_the_clock_reads_the_wall_clock() {
    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "the walk found the sources");
    // Spelt in two, so that this file does not match itself.
    let needle = ["SystemTime", "::now"].concat();
    for file in files {
        if file.ends_with("clock.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains(&needle),
            "{} reads the wall clock: use the engine's Clock",
            file.display()
        );
    }
}
