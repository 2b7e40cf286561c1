//! `trustbridge policy graph [DIR] --format dot|mermaid|json`: the trust graph of a policy
//! directory, offline, for PR comments and docs. The same graph the admin API serves
//! ([`crate::policy::graph`]), loaded by the same [`crate::policy::load_dir`] as `serve`.

use std::io::Write;
use std::path::Path;

use crate::policy::graph::{self, Format};

/// Prints the graph of `dir` in `format`; returns 0, or 1 when the policies do not load
/// (every problem is printed, as `policy check` does).
pub fn run(dir: &Path, format: Format, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match crate::policy::load_dir(dir) {
        Ok(set) => {
            let mut built = graph::build(&set);
            graph::locate(&mut built, set.sources());
            let _ = out.write_all(built.render(format).as_bytes());
            0
        }
        Err(errors) => {
            let _ = writeln!(err, "policies in {}: {errors}", dir.display());
            1
        }
    }
}
