mod pool;

use crate::config::Settings;
use pool::Pool;

pub fn open(_: &Settings) -> Pool {
    pool::Pool
}
