//! `krust-referrers-registry`: ferro-oci-server (OCI distribution 1.1 with
//! the referrers API) on `FERRO_OCI_LISTEN`, blobs in
//! `FERRO_OCI_STORAGE_DIR`, for the referrers tests. Stopped by SIGTERM.

use ferro_oci_server::{Config, serve};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    serve(&Config::from_env()).await
}
