use super::*;
use crate::config::SystemKind;
use std::collections::BTreeSet;
use std::path::PathBuf;

const HERE: &str = "KEY_DOCS in ff-train/src/config_doc.rs";

/// Every table and key path of a TOML table.
fn toml_paths(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (name, v) in table {
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        if let toml::Value::Table(t) = v {
            toml_paths(t, &path, out);
        }
        out.insert(path);
    }
}

/// The paths of the `null` values of a JSON value: the `Option` fields that are `None`
/// (the TOML serialiser leaves them out, the JSON one writes them).
fn null_paths(v: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Null => {
            out.insert(prefix.to_string());
        }
        serde_json::Value::Object(m) => {
            for (name, v) in m {
                let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                null_paths(v, &path, out);
            }
        }
        _ => {}
    }
}

/// Table and key paths in the order the serialiser writes them (the order of the struct
/// fields, keys of a table before its sub-tables), read off the plain TOML text.
fn written_order(text: &str) -> Vec<String> {
    let mut section = String::new();
    let mut order = Vec::new();
    for line in text.lines() {
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = header.to_string();
            order.push(section.clone());
        } else if let Some((name, _)) = line.split_once(" = ") {
            if !line.starts_with([' ', ']', '#']) {
                order.push(if section.is_empty() { name.to_string() } else { format!("{section}.{name}") });
            }
        }
    }
    order
}

/// Where a new entry for `path` belongs in KEY_DOCS: after the documented path written
/// just before it, or among the entries of its table.
fn place_for(path: &str, order: &[String]) -> String {
    let before = order
        .iter()
        .position(|p| p == path)
        .and_then(|i| order[..i].iter().rev().find(|p| doc_for(p).is_some() && parent_of(p) == parent_of(path)));
    match (before, parent_of(path)) {
        (Some(b), _) => format!("after the entry of `{b}`"),
        (None, "") => "among the top-level keys".to_string(),
        (None, table) => format!("among the entries of `{table}`"),
    }
}

#[test]
fn every_key_has_a_comment_and_every_comment_a_key() {
    let default = ExperimentConfig::default();
    let text = default.to_toml();
    let mut present = BTreeSet::new();
    toml_paths(&text.parse().unwrap(), "", &mut present);
    let mut unset = BTreeSet::new();
    null_paths(&serde_json::to_value(&default).unwrap(), "", &mut unset);
    assert!(unset.contains("skip") && unset.contains("device.tcp"), "the JSON form writes None as null");
    let order = written_order(&text);

    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for d in KEY_DOCS {
        if !seen.insert(d.path) {
            problems.push(format!("`{}` is documented twice in {HERE}: keep one entry", d.path));
        }
        if d.doc.trim().is_empty() {
            problems.push(format!("`{}` has an empty comment in {HERE}", d.path));
        }
    }
    for path in &present {
        if doc_for(path).is_none() {
            problems.push(format!(
                "`{path}` is in the configuration but has no comment: add \
                     key(\"{path}\", \"<meaning, unit, allowed values>\") to {HERE}, {}",
                place_for(path, &order)
            ));
        }
    }
    for path in &unset {
        if doc_for(path).is_none() {
            problems.push(format!(
                "`{path}` is optional (None by default, so absent from the TOML) and has no \
                     comment: add opt(\"{path}\", \"<example TOML value>\", \"<meaning, unit, \
                     allowed values>\") to {HERE}, among the entries of `{}`",
                parent_of(path)
            ));
        }
    }
    for d in KEY_DOCS {
        let (is_present, is_unset) = (present.contains(d.path), unset.contains(d.path));
        match (d.example.is_some(), is_present, is_unset) {
            (false, true, _) | (true, false, true) => {}
            (false, false, true) => problems.push(format!(
                "`{}` is optional and unset by default: in {HERE}, declare it with \
                     opt(\"{}\", \"<example TOML value>\", ...) so that it is shown commented out",
                d.path, d.path
            )),
            (true, true, _) => problems.push(format!(
                "`{}` now has a default value in the configuration: in {HERE}, declare it with \
                     key(\"{}\", ...) instead of opt(...)",
                d.path, d.path
            )),
            (_, false, false) => problems.push(format!(
                "{HERE} documents `{}`, which the configuration no longer has: remove the \
                     entry, or rename it to the key that replaced it",
                d.path
            )),
        }
    }
    assert!(problems.is_empty(), "`phyff config` comments are out of date:\n- {}", problems.join("\n- "));
}

#[test]
fn the_commented_default_parses_back_to_the_default() {
    let text = default_toml_with_comments();
    assert_eq!(ExperimentConfig::from_toml(&text).unwrap(), ExperimentConfig::default());
    assert!(text.starts_with("# phyff configuration"), "{text}");
}

#[test]
fn every_key_and_header_has_a_comment_above_and_comments_are_wrapped() {
    let text = default_toml_with_comments();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            let long = line.len() > WRAP_COLUMNS && line.trim_start_matches("# ").contains(' ');
            assert!(!long, "comment line {} is longer than {WRAP_COLUMNS} columns: {line}", i + 1);
            continue;
        }
        assert!(i > 0 && lines[i - 1].starts_with('#'), "line {} `{line}` has no comment above it:\n{text}", i + 1);
    }
    for (key, doc) in [
        ("lr = 0.001", "# Adam learning rate of the blocks (> 0)."),
        ("field_size = 32", "# Side N of the square SLM and camera field, in pixels (>= 1)."),
        ("points = 1024", "# Number of time samples n (>= 2; powers of two are fastest)."),
    ] {
        let i = lines.iter().position(|l| *l == key).unwrap_or_else(|| panic!("no `{key}` in\n{text}"));
        assert_eq!(lines[i - 1], doc);
    }
    let i = lines.iter().position(|l| *l == "[emulator.twin]").expect("[emulator.twin]");
    let start = lines[..i].iter().rposition(|l| !l.starts_with('#')).map_or(0, |j| j + 1);
    assert!(lines[start].starts_with("# The fit of the emulator"), "{}", lines[start..i].join("\n"));
}

#[test]
fn uncommenting_an_optional_line_sets_that_key() {
    let text = default_toml_with_comments();
    let optional: Vec<&KeyDoc> = KEY_DOCS.iter().filter(|d| d.example.is_some()).collect();
    for name in ["skip", "squares", "negative_temperature", "train_limit", "test_limit"] {
        assert!(optional.iter().any(|d| d.path == name), "{name} is shown commented out");
    }
    for path in ["device.command", "device.tcp", "emulator.inputs", "emulator.outputs"] {
        assert!(optional.iter().any(|d| d.path == path), "{path} is shown commented out");
    }
    for d in optional {
        let line = format!("# {} = {}", leaf_of(d.path), d.example.unwrap());
        assert_eq!(text.lines().filter(|l| *l == line).count(), 1, "`{line}` once in\n{text}");
        let set = text.replace(&line, &line[2..]);
        let c = ExperimentConfig::from_toml(&set).unwrap_or_else(|e| panic!("`{}` uncommented: {e}", d.path));
        assert_ne!(c, ExperimentConfig::default(), "uncommenting `{line}` changes nothing");
        let mut paths = BTreeSet::new();
        toml_paths(&c.to_toml().parse().unwrap(), "", &mut paths);
        assert!(paths.contains(d.path), "`{}` set by uncommenting is not in the configuration", d.path);
    }
}

#[test]
fn a_configuration_with_options_set_keeps_its_values() {
    let mut c = ExperimentConfig {
        skip: Some(true),
        train_limit: Some(100),
        system: SystemKind::Emulator,
        ..ExperimentConfig::default()
    };
    c.emulator.inputs = Some(PathBuf::from("x.csv"));
    c.device.tcp = Some("127.0.0.1:7000".into());
    c.freespace.placement = ff_physics::slm::Placement::Tile;
    let text = annotate(&c.to_toml()).unwrap();
    assert_eq!(ExperimentConfig::from_toml(&text).unwrap(), c);
    assert!(text.contains("\nskip = true\n") && text.contains("\ntcp = \"127.0.0.1:7000\"\n"), "{text}");
    assert!(text.contains("\n# outputs = \"y_data.csv\"\n"), "{text}");
    assert!(text.contains("\nplacement = \"tile\"\n"), "{text}");
    assert!(!text.contains("# skip = ") && !text.contains("# tcp = "), "{text}");
}

#[test]
fn undocumented_keys_are_kept() {
    let text = annotate("zeta = 1\nlr = 0.5\n[optics]\nextra = \"x\"\n[new_section.inner]\nk = [1, 2]\n").unwrap();
    let back: toml::Table = text.parse().unwrap();
    assert_eq!(back["zeta"].as_integer(), Some(1));
    assert_eq!(back["optics"]["extra"].as_str(), Some("x"));
    assert_eq!(back["new_section"]["inner"]["k"], toml::Value::Array(vec![1.into(), 2.into()]));
    assert!(text.contains("# Adam learning rate of the blocks (> 0).\nlr = 0.5\n"), "{text}");
}

#[test]
fn comments_wrap_at_word_boundaries() {
    let mut out = String::new();
    write_comment(&mut out, &"word ".repeat(40));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines.iter().all(|l| l.len() <= WRAP_COLUMNS && l.starts_with("# word")), "{out}");
    assert_eq!(out.matches("word").count(), 40);
    let mut out = String::new();
    write_comment(&mut out, "first\nsecond");
    assert_eq!(out, "# first\n# second\n");
}
