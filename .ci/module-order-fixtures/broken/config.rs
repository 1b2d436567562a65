// A layer reaching a later one through a nested group: config is before bus.
use crate::{bus::{routes::{Topic}}};

pub struct Settings(pub Topic);
