//! What every example bin prints, one `key: value` line each, so tests can
//! check that the image configuration (Cmd, Env, User, WorkingDir, data)
//! reached the running program.

use std::path::Path;

/// Prints the report for the bin `name`.
pub fn print(name: &str) {
    println!("bin: {name}");
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("args: {}", args.join(" "));
    for var in ["GREETING", "API_MODE", "KRUST_DATA_PATH"] {
        if let Ok(value) = std::env::var(var) {
            println!("env {var}: {value}");
        }
    }
    println!("ids: {}", ids().unwrap_or_else(|| "unknown".into()));
    if let Ok(cwd) = std::env::current_dir() {
        println!("cwd: {}", cwd.display());
    }
    if let Ok(data) = std::env::var("KRUST_DATA_PATH") {
        print_tree(Path::new(&data), Path::new(&data));
    }
}

/// `uid gid` from /proc (present under runc; absent under a bare chroot).
fn ids() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    };
    Some(format!("{} {}", field("Uid:")?, field("Gid:")?))
}

fn print_tree(root: &Path, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let shown = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        if path.is_dir() {
            print_tree(root, &path);
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            println!("data {shown}: {}", text.trim());
        }
    }
}
