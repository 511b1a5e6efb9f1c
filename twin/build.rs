//! Finds the `proj.db` that `proj-sys` built next to its bundled PROJ, so that `twin::crs` can
//! embed it: PROJ needs its database at run time, and the binary must find it without the user
//! setting `PROJ_DATA`, from any directory and on machines without the build tree.

use std::path::PathBuf;

fn main() {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/twin-<hash>/out; proj-sys's is a sibling.
    let build_dir = out_dir
        .ancestors()
        .nth(2)
        .expect("OUT_DIR has a build directory above it")
        .to_owned();
    let mut candidates: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&build_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("proj-sys-"))
        .map(|e| e.path().join("out/share/proj/proj.db"))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    candidates.sort();
    let Some((_, db)) = candidates.pop() else {
        panic!(
            "no proj.db under {}/proj-sys-*/out/share/proj: the bundled PROJ build (crate proj-sys, feature bundled_proj) did not run; it needs cmake, sqlite3 and libsqlite3-dev",
            build_dir.display()
        );
    };
    println!("cargo:rustc-env=DATABRAIN_PROJ_DB={}", db.display());
    println!("cargo:rerun-if-changed={}", db.display());
    println!("cargo:rerun-if-changed=build.rs");
}
