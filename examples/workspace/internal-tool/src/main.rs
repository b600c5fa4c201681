//! A member with a bin that is not shipped as an image (`skip = true`).
fn main() {
    println!("internal tool");
}
