//! Headless evaluation: agents in goal-reaching episodes, and the report.

pub mod journal;
pub mod run;
