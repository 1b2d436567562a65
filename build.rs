use std::env;
use std::path::Path;

fn main() {
    // `embed_migrations!` does not notice a new migration folder on its own.
    println!("cargo:rerun-if-changed=migrations");
    test_services();
}

/// Which services the integration tests will find, decided as they are
/// built. A test whose service is missing is compiled as ignored, so the
/// runner lists it as ignored, never as passed; in CI (`CI` set to 1,
/// true or yes, in any case) nothing is ignored, and a missing service
/// fails the test that needs it. `HUB_TEST_IN_CI` tells the tests which.
fn test_services() {
    for var in [
        "CI",
        "HUB_TEST_POSTGRES_URL",
        "HUB_TEST_DJANGO_PYTHON",
        "HUB_TEST_CHROMIUM",
        "PATH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let in_ci = env::var("CI")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
    if in_ci {
        println!("cargo:rustc-env=HUB_TEST_IN_CI=1");
    }
    let set = |var: &str| env::var(var).is_ok_and(|v| !v.is_empty());
    let on_path = |program: &str| {
        env::var_os("PATH")
            .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(program).is_file()))
    };
    let chromium = env::var("HUB_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing = [
        ("skip_postgres_tests", !set("HUB_TEST_POSTGRES_URL")),
        ("skip_django_tests", !set("HUB_TEST_DJANGO_PYTHON")),
        ("skip_cluster_tests", !on_path("redis-server")),
        (
            "skip_browser_tests",
            !on_path("node") || !Path::new(&chromium).is_file(),
        ),
        ("skip_nginx_tests", !on_path("nginx") || !on_path("openssl")),
        (
            "skip_nameserver_tests",
            !on_path("named") || !on_path("knotd") || !on_path("dig"),
        ),
    ];
    for (cfg, missing) in missing {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if missing && !in_ci {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
}
