//! Finding credentials the way Alibaba Cloud's official SDKs do: the default chain
//! (environment → OIDC/RRSA → aliyun CLI profile → credentials file → ECS RAM
//! role → credentials URI) and each provider in it. Everything here implements
//! [`crate::api::credentials::CredentialsProvider`], so the API client can be
//! handed any of them.
//!
//! Providers read their configuration from a [`ChainSettings`] value rather than
//! from the process environment directly, so tests (which run on parallel threads)
//! can describe an environment without mutating the real one.

mod cache;
mod chain;
mod cli_profile;
mod ecs;
mod env;
mod oidc;
mod profile_file;
mod ram_role;
mod settings;
mod uri;
mod wire;

pub use crate::api::credentials::{
    Credentials, CredentialsError, CredentialsFuture, CredentialsProvider,
};
pub use chain::DefaultChain;
pub use cli_profile::CliProfileProvider;
pub use ecs::EcsRamRoleProvider;
pub use env::EnvProvider;
pub use oidc::{OidcConfig, OidcProvider};
pub use profile_file::ProfileFileProvider;
pub use ram_role::{RamRoleArnProvider, RamRoleConfig};
pub use settings::{vars, ChainSettings};
pub use uri::UriProvider;

/// Sent to STS and the metadata services, so their logs say who called.
const USER_AGENT: &str = concat!("ecp-inventory/", env!("CARGO_PKG_VERSION"));
