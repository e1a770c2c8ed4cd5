mod crawl;
mod helpers;
mod production;
mod simulator;
mod sql_queries;
mod store;
mod wire_captures;
