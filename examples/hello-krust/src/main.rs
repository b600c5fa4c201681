//! hello-krust: prints a fixed greeting, the architecture it was compiled for,
//! and every argument it received, so a test can check that the image runs on
//! the right platform and that extra `docker run` arguments reach the program.

fn main() {
    println!("Hello from krust!");
    println!("arch: {}", std::env::consts::ARCH);
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("args: {}", args.join(" "));
}
