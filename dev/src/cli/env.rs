//! `sworn-dev env` for Kubernetes mode: shell exports for the running
//! environment (`KUBECONFIG`, and `PATH` with the pinned `kubectl` first).

use std::path::Path;

use anyhow::Result;

use super::state::StateDir;

/// The export lines, one per variable.
pub fn k8s_exports(dir: &Path) -> Result<Vec<String>> {
    let state = StateDir::new(dir)?.load()?;
    Ok(vec![
        format!(
            "export KUBECONFIG={}",
            shell_quote(&state.kubeconfig.to_string_lossy())
        ),
        // `$PATH` stays for the shell to expand when the line is evaluated.
        format!(
            "export PATH={}\":$PATH\"",
            shell_quote(&state.bin_dir.to_string_lossy())
        ),
    ])
}

/// Single-quotes `s` for POSIX shells.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_survive_the_shell() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
