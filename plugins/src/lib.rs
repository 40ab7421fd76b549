//! belroute-plugins: the built-in lookup plugins.
#![forbid(unsafe_code)]
