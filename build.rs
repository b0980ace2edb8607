// `sqlx::migrate!` embeds the files of `migrations/` when the crate compiles; without this a
// migration added to an already built tree would not reach the binary until something else
// made the crate rebuild.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
