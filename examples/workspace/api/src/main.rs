//! The api example bin: reports its runtime configuration and exits.
fn main() {
    report::print("api");
}
