//! `sqlx::migrate!` embeds the migrations at compile time. Cargo rebuilds when
//! an embedded file changes, but not when one is added to the directory: without
//! this, a new migration would be missing from the binary until something else
//! changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
