//! `cache`'s operations over the repository: the signing key made by
//! `cache::ops` (which owns the key and its files), and the fleet's cache read
//! from the validated plans for `show`. Prints nothing.

use camino::Utf8Path;

use crate::cache::ops::{self as cache, Made, Shown};
use crate::error::Error;

/// `cache init`: a new signing key named `name` (`force`: replace one).
pub fn init(root: &Utf8Path, name: &str, force: bool) -> Result<Made, Error> {
    cache::init(root, name, force)
}

/// `cache show`: the cache of the loaded, valid fleet.
pub fn show(root: &Utf8Path) -> Result<Shown, Error> {
    let plans = super::fleet::load_plans(root)?;
    cache::show(&plans)
}
