mod routes;

use crate::{config::Settings, db::{self, open}};
pub use routes::Topic;

pub fn start(settings: &Settings) {
    let _ = (open(settings), db::open(settings), Topic);
}

#[cfg(test)]
mod tests {
    use super::*;
}
