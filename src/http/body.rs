//! Body helpers.
