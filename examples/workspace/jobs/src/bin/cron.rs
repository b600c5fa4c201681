//! The cron example bin: reports its configuration.
fn main() {
    report::print("cron");
    println!("fancy: {}", cfg!(feature = "fancy"));
}
