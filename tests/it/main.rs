mod cli;
mod crawl;
mod helpers;
mod reliability;
mod simulator;
mod sql_queries;
mod store;
mod wire_captures;
