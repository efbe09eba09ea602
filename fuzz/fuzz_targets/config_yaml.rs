//! Arbitrary YAML as the config file (in `fuzz/config/`, so the repository's key and rule
//! files resolve): never a panic, and every refusal is at least one diagnostic naming the
//! file and saying what is wrong. Also the issuer's user file (its own YAML).
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use portcullis_fuzz as harness;

fuzz_target!(init: portcullis_fuzz::seeds::write("config_yaml"), |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = harness::repo().join("fuzz/config/fuzzed.yaml");
    if let Err(errors) = portcullis::config::load_text(&path, text, &HashMap::new()) {
        assert!(!errors.0.is_empty(), "refused without a diagnostic");
        for diagnostic in &errors.0 {
            assert!(
                !diagnostic.message.trim().is_empty(),
                "empty message: {diagnostic:?}"
            );
            assert!(
                !diagnostic.file.as_os_str().is_empty(),
                "no file: {diagnostic:?}"
            );
        }
        let _ = errors.to_string();
    }
    let (users, findings) = portcullis::issuer::users::parse(text);
    let _ = (users, findings);
});
