//! Reading a policy directory: every `*.yaml`/`*.yml` file (not recursive, sorted by name), each
//! split into its `---` documents, each deserialized by its `kind`, then compiled as one set.

use std::path::Path;

use crate::policy::LoadErrors;
use crate::policy::model::PolicySet;

/// Loads and compiles every policy file in `dir`, reporting every problem found in one pass.
pub fn load_dir(dir: &Path) -> Result<PolicySet, LoadErrors> {
    todo!("{dir:?}")
}
