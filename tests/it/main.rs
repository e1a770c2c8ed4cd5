mod crawl;
mod helpers;
mod readme;
mod simulator;
mod sql_queries;
mod store;
mod sync;
mod wire_captures;
