//! Every configuration under `configs/` packs, and each malformed one in
//! `tests/fixtures/` gets the error its first line (`# expect: ...`) names.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serac_config::{pack, Config};
use serac_supervisor_core::manifest::Manifest;

#[test]
fn every_configuration_packs_and_decodes() {
    let names = serac_config::names().unwrap();
    assert!(names.len() > 50, "{names:?}");
    assert!(names.iter().any(|n| n == "web"));
    for n in names {
        let bytes = Config::new(&n).pack().unwrap_or_else(|e| panic!("{e}"));
        let m = Manifest::decode(&bytes).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert!(!m.domains().is_empty(), "{n}");
        // The line of each domain is its `[[domain]]` header.
        let text = std::fs::read_to_string(serac_config::dir().join(format!("{n}.toml"))).unwrap();
        for d in m.domains() {
            let l = text.lines().nth(d.line - 1).unwrap();
            assert_eq!(l, "[[domain]]", "{n}: {}", d.name);
        }
    }
}

#[test]
fn every_fixture_gets_its_error() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let want = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{file}: no `# expect: ` line"));
        let got = pack(&file, &text, &[]).expect_err(&file);
        assert_eq!(got, want, "{file}");
        n += 1;
    }
    assert!(n >= 30, "{n} fixtures");
}

#[test]
fn overrides_are_checked_like_the_file() {
    let m = Config::new("web").count("httpd", 7).test_end_after_ms(900);
    let bytes = m.pack().unwrap();
    let m = Manifest::decode(&bytes).unwrap();
    let h = m.find("httpd").unwrap();
    assert_eq!((m.domains()[h].count, m.test_end_after_ms), (7, Some(900)));
    // The line is count's if the file has it, else the domain's header.
    let e = Config::new("web").count("httpd", 0).pack().unwrap_err();
    assert!(
        e.starts_with("configs/web.toml:")
            && e.ends_with(
                ": domain \"httpd\": key \"count\": expected an integer from 1 to 1048576"
            ),
        "{e}"
    );
    let e = Config::new("web").count("ghost", 1).pack().unwrap_err();
    assert_eq!(e, "configs/web.toml: override: no domain \"ghost\"");
    let e = Config::new("no-such-config").pack().unwrap_err();
    assert!(e.starts_with("configs/no-such-config.toml: "), "{e}");
    assert!(e.contains("web"), "{e}");
}

/// Prints what each fixture gets (`cargo test -p serac-config --
/// --ignored show_fixtures --nocapture`), to write a new one's `# expect:`.
#[test]
#[ignore]
fn show_fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    for path in v {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        println!("{}", pack(&file, &text, &[]).expect_err(&file));
    }
}
