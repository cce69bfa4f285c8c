use super::*;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn probe_the_crate_is_the_nearest_manifest_with_a_library() {
    let ws = tempfile::tempdir().unwrap();
    let root = ws.path().join("crates/a");
    write(&root.join("Cargo.toml"), "[package]\nname = \"a\"\n");
    write(&root.join("src/lib.rs"), "pub mod util;\n");
    write(&root.join("src/util/deep.rs"), "");
    let file = root.join("src/util/deep.rs");
    assert_eq!(
        find_crate(&file, Some(ws.path())),
        Some(Crate {
            root: root.clone(),
            file: PathBuf::from("src/util/deep.rs"),
        })
    );
    assert_eq!(find_crate(&file, None).map(|c| c.root), Some(root.clone()));
    // The binary of a crate that has a library is not in the library.
    assert_eq!(find_crate(&root.join("src/main.rs"), Some(ws.path())), None);
    assert_eq!(
        find_crate(&root.join("src/bin/x.rs"), Some(ws.path())),
        None
    );
    assert_eq!(find_crate(&root.join("build.rs"), Some(ws.path())), None);
}

#[test]
fn probe_the_crate_search_stops_at_the_workspace_root() {
    let outer = tempfile::tempdir().unwrap();
    write(
        &outer.path().join("Cargo.toml"),
        "[package]\nname = \"o\"\n[lib]\n",
    );
    let ws = outer.path().join("src");
    let file = ws.join("util.rs");
    write(&file, "");
    // No manifest in the workspace: the one above it is not looked at.
    assert_eq!(find_crate(&file, Some(&ws)), None);
    assert_eq!(
        find_crate(&file, Some(outer.path())).map(|c| c.root),
        Some(outer.path().to_path_buf())
    );
    // A file outside the workspace is looked up on its own, a few folders up.
    let elsewhere = tempfile::tempdir().unwrap();
    assert_eq!(
        find_crate(&file, Some(elsewhere.path())).map(|c| c.root),
        Some(outer.path().to_path_buf())
    );
}

#[test]
fn probe_a_binary_only_crate_is_built_standalone() {
    let ws = tempfile::tempdir().unwrap();
    write(&ws.path().join("Cargo.toml"), "[package]\nname = \"b\"\n");
    write(&ws.path().join("src/main.rs"), "mod cli;\nfn main() {}\n");
    write(&ws.path().join("src/cli.rs"), "");
    assert_eq!(
        find_crate(&ws.path().join("src/cli.rs"), Some(ws.path())),
        None
    );
    assert_eq!(
        find_crate(&ws.path().join("src/main.rs"), Some(ws.path())),
        None
    );
    // A `[lib]` section with another path counts as a library.
    write(
        &ws.path().join("Cargo.toml"),
        "[package]\nname = \"b\"\n\n[lib]\npath = \"src/cli.rs\"\n",
    );
    assert!(find_crate(&ws.path().join("src/cli.rs"), Some(ws.path())).is_some());
}

#[test]
fn probe_module_paths_name_the_test() {
    let m = |p: &str| module_path(Path::new(p));
    assert_eq!(m("src/lib.rs").as_deref(), Some(""));
    assert_eq!(m("src/util.rs").as_deref(), Some("util::"));
    assert_eq!(m("src/a/mod.rs").as_deref(), Some("a::"));
    assert_eq!(m("src/a/b.rs").as_deref(), Some("a::b::"));
    assert_eq!(m("src/main.rs"), None);
    assert_eq!(m("src/bin/x.rs"), None);
    assert_eq!(m("src/my-mod.rs"), None);
    assert_eq!(m("tests/t.rs"), None);
    assert_eq!(m("src/x.txt"), None);
}

#[test]
fn probe_the_test_binary_is_read_from_cargos_output() {
    let out = "   Compiling a v0.1.0 (/w)\n    Finished `test` profile [unoptimized + debuginfo] target(s) in 0.5s\n  Executable unittests src/lib.rs (/p/target/debug/deps/a-0123abcd)\n";
    assert_eq!(
        executable(out),
        Some(PathBuf::from("/p/target/debug/deps/a-0123abcd"))
    );
    assert_eq!(executable("error: could not compile"), None);
    assert_eq!(quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    assert_eq!(folder_hash(Path::new("/x")).len(), 16);
}
