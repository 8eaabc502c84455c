//! `sreg-server admin` and `gc` as an operator runs them.

//! Runs beside a live server on the same registry, on whichever database
//! the test pass selects.

use std::process::Output;

use sreg_tests::Server;

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn err(out: &Output) -> String {
    assert!(!out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn users_and_tokens_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--data-dir", "data"]);
    let admin = |args: &[&str]| server.admin(args);
    ok(&admin(&[
        "admin",
        "user",
        "add",
        "alice",
        "--email",
        "a@example.org",
    ]));
    ok(&admin(&["admin", "user", "add", "root", "--admin"]));
    assert!(err(&admin(&["admin", "user", "add", "alice"])).contains("already taken"));
    assert!(err(&admin(&["admin", "user", "add", "Bad/Name"])).contains("not valid"));

    // The token alone on stdout, for scripts.
    let stdout = ok(&admin(&[
        "admin",
        "token",
        "create",
        "alice",
        "--expires-in",
        "30d",
        "--name",
        "ci",
    ]));
    let token = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(token.starts_with("sreg_") && token.len() == 45, "{token:?}");

    let listing = ok(&admin(&["admin", "token", "list", "alice"]));
    assert!(
        listing.contains("ci") && listing.contains("active"),
        "{listing}"
    );
    assert!(
        listing.contains(&token[..13]),
        "the prefix identifies it: {listing}"
    );
    assert!(
        !listing.contains(&token[13..]),
        "the secret is never shown: {listing}"
    );

    let id = listing
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    ok(&admin(&["admin", "token", "revoke", "alice", &id]));
    assert!(ok(&admin(&["admin", "token", "list", "alice"])).contains("revoked"));

    assert!(err(&admin(&["admin", "token", "create", "nobody"])).contains("admin user add nobody"));
    assert!(
        err(&admin(&[
            "admin",
            "token",
            "create",
            "alice",
            "--expires-in",
            "soon"
        ]))
        .contains("not a duration")
    );

    ok(&admin(&["admin", "team", "add", "lab", "--owner", "alice"]));
    ok(&admin(&["admin", "team", "member", "lab", "root"]));
    assert!(err(&admin(&["admin", "team", "member", "alice", "root"])).contains("is a user"));
}

#[test]
fn gc_on_an_empty_registry_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--data-dir", "data"]);
    let out = server.admin(&["gc", "--grace", "0s"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("removed 0 unreferenced blob(s) and 0 abandoned upload(s)"),
        "{said}"
    );
}
