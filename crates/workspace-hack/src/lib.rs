//! No code: this crate only unifies the features of third-party dependencies across the
//! workspace (see its Cargo.toml), so every command reuses one compiled burn.
