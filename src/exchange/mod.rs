//! exchange (to be written).
