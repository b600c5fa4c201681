//! Built only with `--features jobs/admin` (required-features).
fn main() {
    report::print("admin");
}
