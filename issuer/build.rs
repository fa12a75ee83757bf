//! The schema migrations in `migrations/` are embedded at compile time (`refinery`): rebuild
//! when one changes.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
