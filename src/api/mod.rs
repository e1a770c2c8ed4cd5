//! The wire: models, signing, credentials, and the HTTP client with its errors,
//! retries and rate limit.

pub mod client;
pub mod credentials;
pub mod error;
pub mod model;
pub mod ratelimit;
pub mod retry;
pub mod sign;

pub use client::{Client, ClientConfig, InstancePage};
pub use credentials::Credentials;
pub use error::ApiError;
