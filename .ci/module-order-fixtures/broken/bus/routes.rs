// ...and the child uses its parent: a cycle.
use super::start;

pub struct Topic;

pub fn again() -> Topic {
    start()
}
