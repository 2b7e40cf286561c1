//! Composition root (to be written).
