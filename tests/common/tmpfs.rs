//! A tmpfs of a given size mounted for one test (needs root or
//! CAP_SYS_ADMIN): a data directory whose disk fills up on purpose.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Unmounts the tmpfs when the test ends, however it ends.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let opts = format!("size={size}");
        if let Err(e) = run_mount(&["-t", "tmpfs", "-o", &opts, "tmpfs"], dir) {
            panic!(
                "this test needs root or CAP_SYS_ADMIN to mount a tmpfs at {}: {e}",
                dir.display()
            );
        }
        Tmpfs(dir.to_path_buf())
    }

    /// Gives the file system room again, under the running server.
    pub fn resize(&self, size: &str) {
        let opts = format!("remount,size={size}");
        run_mount(&["-o", &opts], &self.0).unwrap_or_else(|e| panic!("remount: {e}"));
    }
}

fn run_mount(args: &[&str], dir: &Path) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .arg(dir)
        .output()
        .map_err(|e| format!("run mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a server still being torn down must not keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
