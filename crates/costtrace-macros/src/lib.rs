//! #[tracked]
