//! The config parser and validation: proxy.toml text into a `Snapshot`, with an
//! environment that sets every variable, and what startup then reads of it.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use understudy::config;
use understudy_fuzz::world::env;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Relative file keys (ca_file, tls) resolve under a folder that does not exist.
    let Ok(snapshot) = config::from_str(text, Path::new("/nonexistent/proxy.toml"), &env()) else {
        return;
    };
    let _ = snapshot.summary();
    let _ = snapshot.servable();
    for model in ["default", "m", "openai/gpt-4o"] {
        let _ = snapshot.resolve(model).map(|r| r.label());
    }
});
