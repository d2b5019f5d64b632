//! Unix-mode quickstart (`sworn-dev up` without `--kubernetes`): placeholder until
//! the lead lands the real implementation.

/// Runs the unix-mode quickstart with its state in `dir`.
pub async fn up(dir: &std::path::Path) -> anyhow::Result<()> {
    anyhow::bail!("unix mode not built yet (state dir {})", dir.display())
}
