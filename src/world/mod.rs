//! The world: scene files, the deterministic simulator, and the Bevy app that draws many
//! environments at once into video observations.

pub mod env;
pub mod first_person;
pub mod gym;
pub mod layout;
pub mod oracle;
pub mod policy;
pub mod render;
pub mod scene;
pub mod sim;

pub use env::{check_adapter, EnvError, Info, Obs, VecEnv, VULKAN_INSTALL_HINT};
pub use scene::{Scene, SceneError};
pub use sim::EnvState;
