//! c-deps: a binary whose build compiles C for the target platform. It uses
//! mimalloc (C) as its global allocator and proves it by asking mimalloc
//! whether a heap allocation is its own, then compresses and decompresses a
//! buffer with zstd (C) and checks the round trip. Any argument is echoed, so
//! a test can check that `docker run` arguments reach the program.

use std::ffi::c_void;

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    println!("c-deps: C code cross-compiled by cargo-krust");
    println!("arch: {}", std::env::consts::ARCH);

    // major, two digits of minor, two digits of patch (e.g. 30302).
    let version = unsafe { libmimalloc_sys::mi_version() };
    let buffer = vec![7u8; 4096];
    let owned = unsafe { libmimalloc_sys::mi_is_in_heap_region(buffer.as_ptr() as *const c_void) };
    println!(
        "allocator: mimalloc {}.{}.{} (heap allocation owned by mimalloc: {owned})",
        version / 10000,
        version / 100 % 100,
        version % 100
    );

    let text = "cargo-krust builds C dependencies for every platform. ".repeat(200);
    let compressed = match zstd::bulk::compress(text.as_bytes(), 19) {
        Ok(bytes) => bytes,
        Err(err) => fail(&format!("zstd compression failed: {err}")),
    };
    let restored = match zstd::bulk::decompress(&compressed, text.len()) {
        Ok(bytes) => bytes,
        Err(err) => fail(&format!("zstd decompression failed: {err}")),
    };
    if restored != text.as_bytes() {
        fail("zstd round trip changed the data");
    }
    println!(
        "zstd {}: {} bytes -> {} bytes -> {} bytes, round trip ok",
        zstd::zstd_safe::version_string(),
        text.len(),
        compressed.len(),
        restored.len()
    );

    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("args: {}", args.join(" "));
}

fn fail(message: &str) -> ! {
    eprintln!("c-deps: {message}");
    std::process::exit(1)
}
