//! cargo-krust: `ko` for Rust. Builds the bin targets of a Rust workspace
//! into static musl binaries, layers them onto a base image and publishes
//! multi-platform OCI image indexes.
//!
//! The pipeline, one module per stage, data flowing one way:
//! [`plan`] → [`compile`] → [`assemble`] → [`publish`], wired by [`pipeline`],
//! with [`base`] resolving base images beside compilation. [`resolve`] feeds
//! the `krust://` references of Kubernetes YAML through the same pipeline.

pub mod assemble;
pub mod base;
pub mod cli;
pub mod compile;
pub mod dockerfile;
pub mod fsutil;
pub mod image_name;
pub mod index;
pub mod oci;
pub mod pipeline;
pub mod plan;
pub mod platform;
pub mod progress;
pub mod publish;
pub mod registry;
pub mod report;
pub mod resolve;
pub mod run;
pub mod store;
pub mod supply;
