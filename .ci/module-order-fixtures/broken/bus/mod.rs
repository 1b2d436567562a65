mod routes;

// The parent uses its child through a child-relative path...
pub fn start() -> routes::Topic {
    routes::Topic
}
