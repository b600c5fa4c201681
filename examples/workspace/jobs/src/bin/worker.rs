//! The worker example bin: reports its configuration and whether the
//! `fancy` feature (set by the `features` key) was compiled in.
fn main() {
    report::print("worker");
    println!("fancy: {}", cfg!(feature = "fancy"));
}
