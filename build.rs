//! `sqlx::migrate!` embeds the migrations at compile time, but Cargo does not
//! know the macro read them: without this, a migration added or edited after the
//! last build would be missing from the binary until something else changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
