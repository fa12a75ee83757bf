//! `svctoken-client`: token sources, a refresh-ahead cache and a Convex HTTP API client.
//!
//! This crate is a placeholder until the client issue lands; it compiles so the workspace
//! layout matches the design from the first commit.
