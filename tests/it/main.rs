mod crawl;
mod helpers;
mod sql_queries;
mod store;
