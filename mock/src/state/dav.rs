//! What Nextcloud's own HTTP surface (`crate::nextcloud`) asks of the state beyond the
//! operations the tools share with it.

use super::Data;

impl Data {
    /// `owner` has a file tree: a user, or a client acting for itself (a service account). A
    /// bearer token outlives its user; the data APIs refuse it once the tree is gone.
    pub fn has_files(&self, owner: &str) -> bool {
        self.trees.contains_key(owner)
    }
}
