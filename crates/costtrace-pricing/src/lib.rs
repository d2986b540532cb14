//! Price catalogue and cost engine (work in progress).
