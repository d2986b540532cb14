//! costtrace
