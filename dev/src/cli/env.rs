//! `sworn-dev env`: shell exports for the environment running in `--dir`.
//! Unix mode: `SPIFFE_ENDPOINT_SOCKET` (a `unix://` URI) and
//! `SWORN_ADMIN_SOCKET`. Kubernetes mode: `KUBECONFIG`, `PATH` with the
//! pinned `kubectl` first, and `SWORN_ADMIN_SOCKET` when a server runs.

use std::path::Path;

use anyhow::Result;

use super::state::StateDir;

/// The export lines for whichever environment runs in `dir`.
pub fn exports(dir: &Path) -> Result<Vec<String>> {
    if let Some(lines) = crate::unix::exports(dir)? {
        return Ok(lines);
    }
    if dir.join("k8s").exists() {
        let mut lines = k8s_exports(dir)?;
        let admin = dir.join("k8s").join("server").join("admin.sock");
        if admin.exists() {
            lines.push(format!(
                "export SWORN_ADMIN_SOCKET={}",
                shell_quote(&admin.to_string_lossy())
            ));
        }
        return Ok(lines);
    }
    anyhow::bail!(
        "no environment is running in {d}; start one with `sworn-dev --dir {d} up` (unix mode) or `sworn-dev --dir {d} up --kubernetes`",
        d = dir.display()
    )
}

/// The Kubernetes-mode export lines, one per variable. Refused while `up` is
/// still starting: the environment is usable only once every agent serves.
pub fn k8s_exports(dir: &Path) -> Result<Vec<String>> {
    let state = StateDir::new(dir)?.load()?;
    anyhow::ensure!(
        state.ready,
        "the environment in {} is still starting (its agents are not yet attested and synced); `up` prints its environment when it is ready",
        dir.display()
    );
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
