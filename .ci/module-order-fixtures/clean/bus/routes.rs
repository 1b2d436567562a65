pub struct Topic;

pub(super) fn visible_to_the_bus_only() {}
