//! Config hot reload (file watch + SIGHUP).
