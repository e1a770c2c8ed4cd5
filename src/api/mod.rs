//! The wire: models, signing, credentials, and the HTTP client with its errors.

pub mod credentials;
pub mod model;
pub mod sign;

pub use credentials::Credentials;
