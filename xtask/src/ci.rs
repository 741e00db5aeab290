//! Checks of the CI entry point itself (`scripts/test.sh`, which `.ci/run` execs): that it refuses to pass
//! where the kernel tests cannot run. A CI that "passed" without root would have covered no eBPF code.
//!
//! Owns checks of the scripts' behaviour. Must not run the suite itself (the script stops at its first
//! check here, before any package install or build).

#[cfg(test)]
mod tests {
    use std::process::Command;

    use crate::tidy::workspace_root;

    /// `CI=true scripts/test.sh` as an unprivileged user exits 1 at once, saying that root is needed.
    #[test]
    fn ci_refuses_to_run_without_root() {
        let script = workspace_root().join("scripts/test.sh");
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let mut command = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--", "bash"]);
            c
        } else {
            Command::new("bash")
        };
        let out = command
            .arg(&script)
            .env("CI", "true")
            .current_dir(std::env::temp_dir())
            .output()
            .expect("run scripts/test.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "stdout: {}\nstderr: {stderr}", String::from_utf8_lossy(&out.stdout));
        assert!(stderr.contains("not running as root"), "{stderr}");
        assert!(stderr.contains("refusing to pass"), "{stderr}");
    }
}
