//! Integration tests: the real pipeline on tiny settings. One test binary, one module per area.

mod agents;
mod ami;
mod collect;
mod conv;
mod docs;
mod eval;
mod fuzz;
mod gym;
mod hierarchy;
mod jepa;
mod physics;
mod plan;
mod reliability;
mod render;
mod scenes;
mod ssl;
mod ssl_parity;
mod window;
