//! The web pages' foundation against a real `sreg-server` (SQLite, then
//! PostgreSQL under scripts/test), driven over HTTP with a cookie-keeping
//! client as a browser would: security headers, sign-in and sign-out,
//! CSRF tokens, rate limits, registration, escaping, and totals that count
//! only what the visitor may see.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use reqwest::header::HeaderMap;
use sreg_tests::images::write_sif;
use sreg_tests::{Server, bin};

/// A browser: keeps cookies, does not follow redirects (so that tests see
/// them).
fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn get(c: &Client, server: &Server, path: &str) -> (StatusCode, HeaderMap, String) {
    let r = c
        .get(format!("{}{path}", server.url))
        .header("Accept", "text/html")
        .send()
        .unwrap();
    parts(r)
}

fn parts(r: Response) -> (StatusCode, HeaderMap, String) {
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.text().unwrap())
}

fn post(
    c: &Client,
    server: &Server,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    parts(
        c.post(format!("{}{path}", server.url))
            .form(form)
            .send()
            .unwrap(),
    )
}

/// The form token in a page.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no form token in:\n{html}"));
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// Who the page says is signed in.
fn signed_in_as(html: &str) -> Option<String> {
    let at = html.find("id=\"signed-in-as\">")?;
    let rest = &html[at + "id=\"signed-in-as\">".len()..];
    Some(rest[..rest.find('<').unwrap()].to_string())
}

fn set_password(server: &Server, user: &str, password: &str) {
    let out = server.admin_with_stdin(
        &["admin", "user", "passwd", user, "--password-stdin"],
        &format!("{password}\n"),
    );
    assert!(out.status.success(), "passwd {user}: {out:?}");
}

/// Signs in through the login form, as a browser does.
fn sign_in(
    c: &Client,
    server: &Server,
    user: &str,
    password: &str,
) -> (StatusCode, HeaderMap, String) {
    let (status, _, page) = get(c, server, "/login");
    assert_eq!(status, StatusCode::OK, "{page}");
    let token = csrf_of(&page);
    post(
        c,
        server,
        "/login",
        &[
            ("csrf", &token),
            ("username", user),
            ("password", password),
            ("next", "/"),
        ],
    )
}

fn user_exists(server: &Server, name: &str) -> bool {
    server
        .admin(&["admin", "token", "list", name])
        .status
        .success()
}

fn assert_security_headers(h: &HeaderMap, what: &str) {
    let csp = h
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"))
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["referrer-policy"], "same-origin", "{what}");
}

fn write_config(dir: &Path, registry: &str) -> String {
    let path = dir.join("sreg.toml");
    std::fs::write(&path, format!("[registry]\n{registry}")).unwrap();
    path.display().to_string()
}

#[test]
fn pages_carry_security_headers_and_embedded_assets() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "name = \"Lab <b>Registry</b>\"\nhelp_contact = \"hpc@example.org\"\n",
    );
    let server = Server::start(dir.path(), &["--data-dir", "data", "--config", &config]);
    let c = browser();
    for path in ["/", "/login", "/collections", "/register", "/no/such/page"] {
        let (status, h, page) = get(&c, &server, path);
        assert_security_headers(&h, path);
        assert!(
            h["content-type"].to_str().unwrap().starts_with("text/html"),
            "{path}"
        );
        // The registry name and help contact come from the settings, as text.
        assert!(
            page.contains("Lab &lt;b&gt;Registry&lt;/b&gt;"),
            "{path}: {page}"
        );
        assert!(!page.contains("<b>Registry"), "{path}");
        assert!(page.contains("href=\"mailto:hpc@example.org\""), "{path}");
        // No inline script: every script comes from /static.
        assert!(!page.contains("<script>"), "{path}");
        let expected = match path {
            "/no/such/page" => StatusCode::NOT_FOUND,
            "/register" => StatusCode::FORBIDDEN,
            _ => StatusCode::OK,
        };
        assert_eq!(status, expected, "{path}: {page}");
    }
    // Programs asking for something unknown get a short text, not a page.
    let r = c
        .get(format!("{}/no/such/page", server.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().unwrap().len() < 50);

    // Assets are served by the server itself, under content-hashed names
    // that may be cached for good.
    let (_, _, home) = get(&c, &server, "/");
    for (ext, ctype) in [(".css", "text/css"), (".js", "text/javascript")] {
        let end = home.find(&format!("{ext}\"")).unwrap() + ext.len();
        let start = home[..end].rfind("/static/").unwrap();
        let url = &home[start..end];
        let r = c.get(format!("{}{url}", server.url)).send().unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(ctype)
        );
        assert!(
            r.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        assert!(!r.text().unwrap().is_empty());
    }
    let (status, _, _) = get(&c, &server, "/static/style.css");
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "only hashed names are served"
    );
    // The API keeps its own JSON answers.
    let r = c
        .get(format!("{}/api/v1/collections", server.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("json")
    );
}

#[test]
fn sign_in_and_out_with_passwords_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--data-dir", "data"]);
    server.user_with_token("alice", false);
    server.user_with_token("nopass", false);
    set_password(&server, "alice", "correct horse battery");

    // The password is stored as an argon2 hash, never as given.
    let c = browser();
    let (status, h, page) = sign_in(&c, &server, "alice", "wrong password");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("Wrong user name or password."), "{page}");
    assert!(
        h.get("set-cookie")
            .is_none_or(|v| !v.to_str().unwrap().contains("sreg_session"))
    );
    // An unknown user and a user without a password get the same answer.
    for user in ["nobody", "nopass"] {
        let (status, _, page) = sign_in(&c, &server, user, "whatever123");
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}");
        assert!(page.contains("Wrong user name or password."), "{user}");
    }
    assert_eq!(signed_in_as(&get(&c, &server, "/").2), None);

    let (status, h, _) = sign_in(&c, &server, "alice", "correct horse battery");
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(h["location"], "/");
    let cookie = h
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("sreg_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http public URL: {cookie}"
    );
    let session = cookie["sreg_session=".len()..cookie.find(';').unwrap()].to_string();
    let (_, _, home) = get(&c, &server, "/");
    assert_eq!(signed_in_as(&home).as_deref(), Some("alice"));
    // Signed in, the login page sends you on.
    assert_eq!(get(&c, &server, "/login").0, StatusCode::SEE_OTHER);

    // The same session id from another browser is the same session.
    let other = browser();
    let with_cookie = |c: &Client| {
        c.get(format!("{}/", server.url))
            .header("Cookie", format!("sreg_session={session}"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    assert_eq!(signed_in_as(&with_cookie(&other)).as_deref(), Some("alice"));

    // Sign-out needs the form token; without it nothing changes.
    let (status, _, page) = post(&c, &server, "/logout", &[]);
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("did not come from this site"), "{page}");
    let (status, _, _) = post(&c, &server, "/logout", &[("csrf", "forged")]);
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        signed_in_as(&get(&c, &server, "/").2).as_deref(),
        Some("alice")
    );

    let token = csrf_of(&home);
    let (status, h, _) = post(&c, &server, "/logout", &[("csrf", &token)]);
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        h["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("sreg_session=;")
    );
    assert_eq!(signed_in_as(&get(&c, &server, "/").2), None);
    // The session ended on the server: the old cookie no longer works.
    assert_eq!(signed_in_as(&with_cookie(&browser())), None);

    // Setting a new password ends every session of the user.
    let (status, _, _) = sign_in(&c, &server, "alice", "correct horse battery");
    assert_eq!(status, StatusCode::SEE_OTHER);
    set_password(&server, "alice", "a new long password");
    assert_eq!(signed_in_as(&get(&c, &server, "/").2), None);
    assert_eq!(
        sign_in(&c, &server, "alice", "correct horse battery").0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&c, &server, "alice", "a new long password").0,
        StatusCode::SEE_OTHER
    );
}

#[test]
fn admin_passwd_refuses_bad_input_and_unknown_users() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--data-dir", "data"]);
    server.user_with_token("alice", false);
    let out = server.admin_with_stdin(&["admin", "user", "passwd", "alice"], "short\n");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 8 characters"),
        "{out:?}"
    );
    let out = server.admin_with_stdin(&["admin", "user", "passwd", "alice"], "");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no password on stdin"),
        "{out:?}"
    );
    let out = server.admin_with_stdin(&["admin", "user", "passwd", "ghost"], "long enough pw\n");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no user named \"ghost\""),
        "{out:?}"
    );
    // None of that gave alice a password.
    assert_eq!(
        sign_in(&browser(), &server, "alice", "long enough pw").0,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn forms_without_the_visitors_token_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "registration = \"open\"\n");
    let server = Server::start(dir.path(), &["--data-dir", "data", "--config", &config]);
    server.user_with_token("alice", false);
    set_password(&server, "alice", "correct horse battery");

    let c = browser();
    let (_, _, page) = get(&c, &server, "/login");
    let mine = csrf_of(&page);
    // Another visitor's token (a forging site can get its own) is no use.
    let (_, _, page) = get(&browser(), &server, "/login");
    let theirs = csrf_of(&page);
    assert_ne!(mine, theirs);
    for token in [None, Some(""), Some(theirs.as_str()), Some("AAAA")] {
        let mut form = vec![("username", "alice"), ("password", "correct horse battery")];
        if let Some(t) = token {
            form.push(("csrf", t));
        }
        let (status, h, _) = post(&c, &server, "/login", &form);
        assert_eq!(status, StatusCode::FORBIDDEN, "{token:?}");
        assert!(
            h.get("set-cookie")
                .is_none_or(|v| !v.to_str().unwrap().contains("sreg_session"))
        );
    }
    assert_eq!(signed_in_as(&get(&c, &server, "/").2), None);

    // Registration without a token creates nobody.
    let (status, _, _) = post(
        &c,
        &server,
        "/register",
        &[
            ("username", "mallory"),
            ("password", "long enough pw"),
            ("password2", "long enough pw"),
        ],
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!user_exists(&server, "mallory"));

    // The right token works, and a token from before sign-in does not
    // survive it.
    let (status, _, _) = post(
        &c,
        &server,
        "/login",
        &[
            ("csrf", &mine),
            ("username", "alice"),
            ("password", "correct horse battery"),
        ],
    );
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = post(&c, &server, "/logout", &[("csrf", &mine)]);
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        signed_in_as(&get(&c, &server, "/").2).as_deref(),
        Some("alice")
    );
}

#[test]
fn repeated_failures_block_sign_in_for_that_account() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--data-dir", "data"]);
    for u in ["alice", "bob"] {
        server.user_with_token(u, false);
        set_password(&server, u, &format!("{u} password ok"));
    }
    let c = browser();
    for i in 0..5 {
        let (status, _, _) = sign_in(&c, &server, "alice", &format!("guess {i}"));
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // Now even the right password is refused, with a clear message.
    let (status, h, page) = sign_in(&c, &server, "alice", "alice password ok");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
    assert!(page.contains("Too many failed sign-ins"), "{page}");
    assert!(page.contains("Try again in 15 minutes"), "{page}");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry), "{retry}");
    assert_security_headers(&h, "429 page");
    // Upper case is the same account.
    assert_eq!(
        sign_in(&c, &server, "ALICE", "alice password ok").0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(signed_in_as(&get(&c, &server, "/").2), None);
    // Another account from the same address is not blocked.
    assert_eq!(
        sign_in(&c, &server, "bob", "bob password ok").0,
        StatusCode::SEE_OTHER
    );
}

#[test]
fn many_failures_from_one_address_block_it_for_every_account() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--data-dir", "data"]);
    server.user_with_token("alice", false);
    set_password(&server, "alice", "alice password ok");
    let c = browser();
    // Four tries each at five names: no account reaches its own limit.
    for i in 0..20 {
        let (status, _, _) = sign_in(&c, &server, &format!("user{}", i % 5), "guess");
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let (status, _, page) = sign_in(&c, &server, "alice", "alice password ok");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
    assert!(page.contains("from your address"), "{page}");
}

#[test]
fn session_cookies_are_secure_behind_https() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--data-dir",
            "data",
            "--public-url",
            "https://registry.example.org",
        ],
    );
    server.user_with_token("alice", false);
    set_password(&server, "alice", "alice password ok");
    // A cookie store would (rightly) not send Secure cookies over plain
    // http, so this client carries the form cookie itself.
    let c = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = c.get(format!("{}/login", server.url)).send().unwrap();
    let csrf_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(csrf_cookie.contains("; Secure"), "{csrf_cookie}");
    let pair = csrf_cookie.split(';').next().unwrap().to_string();
    let token = csrf_of(&r.text().unwrap());
    let r = c
        .post(format!("{}/login", server.url))
        .header("Cookie", pair)
        .form(&[
            ("csrf", token.as_str()),
            ("username", "alice"),
            ("password", "alice password ok"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = r.headers()["set-cookie"].to_str().unwrap();
    assert!(session.starts_with("sreg_session="), "{session}");
    assert!(
        session.contains("; Secure") && session.contains("HttpOnly"),
        "{session}"
    );
}

#[test]
fn registration_follows_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    // Closed (the default): the page says whom to ask, and posting fails.
    let server = Server::start(dir.path(), &["--data-dir", "closed"]);
    let c = browser();
    let (status, _, page) = get(&c, &server, "/register");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Registration is closed"), "{page}");
    assert!(
        !page.contains("href=\"/register\""),
        "no link to a closed registration"
    );
    let token = csrf_of(&get(&c, &server, "/login").2);
    let form = [
        ("csrf", token.as_str()),
        ("username", "carol"),
        ("password", "long enough pw"),
        ("password2", "long enough pw"),
    ];
    assert_eq!(
        post(&c, &server, "/register", &form).0,
        StatusCode::FORBIDDEN
    );
    assert!(!user_exists(&server, "carol"));
    drop(server);

    let config = write_config(dir.path(), "registration = \"open\"\n");
    let server = Server::start(dir.path(), &["--data-dir", "open", "--config", &config]);
    let c = browser();
    let (status, _, page) = get(&c, &server, "/register");
    assert_eq!(status, StatusCode::OK);
    let token = csrf_of(&page);
    let attempt = |user: &str, pw: &str, pw2: &str| {
        post(
            &c,
            &server,
            "/register",
            &[
                ("csrf", &token),
                ("username", user),
                ("email", ""),
                ("password", pw),
                ("password2", pw2),
            ],
        )
    };
    for (user, pw, pw2, says) in [
        ("carol", "short", "short", "at least 8 characters"),
        (
            "carol",
            "long enough pw",
            "other long pw",
            "The two passwords differ",
        ),
        (
            "Carol <x>",
            "long enough pw",
            "long enough pw",
            "is not valid",
        ),
    ] {
        let (status, _, page) = attempt(user, pw, pw2);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{user}/{pw}");
        assert!(page.contains(says), "{says}: {page}");
        assert!(!page.contains("<x>"), "the name is shown escaped");
    }
    assert!(!user_exists(&server, "carol"));
    let (status, h, _) = attempt("carol", "long enough pw", "long enough pw");
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(h["location"], "/");
    assert_eq!(
        signed_in_as(&get(&c, &server, "/").2).as_deref(),
        Some("carol")
    );
    assert!(user_exists(&server, "carol"));
    // The name is taken now.
    let c2 = browser();
    let (_, _, page) = get(&c2, &server, "/register");
    let token2 = csrf_of(&page);
    let (status, _, page) = post(
        &c2,
        &server,
        "/register",
        &[
            ("csrf", &token2),
            ("username", "carol"),
            ("password", "long enough pw"),
            ("password2", "long enough pw"),
        ],
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("taken"), "{page}");
    // And the new account signs in with its password.
    assert_eq!(
        sign_in(&browser(), &server, "carol", "long enough pw").0,
        StatusCode::SEE_OTHER
    );
}

#[test]
fn what_visitors_type_is_shown_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--data-dir", "data"]);
    let c = browser();
    let attack = "<script>alert(1)</script>\" onfocus=\"alert(2)";
    let (status, _, page) = sign_in(&c, &server, attack, "whatever123");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(!page.contains("\" onfocus=\""), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot; onfocus&#x3D;&quot;alert(2)"),
        "{page}"
    );
    // `next` cannot send the visitor to another site.
    server.user_with_token("alice", false);
    set_password(&server, "alice", "correct horse battery");
    let (_, _, page) = get(&c, &server, "/login?next=//evil.example/");
    let token = csrf_of(&page);
    assert!(page.contains("name=\"next\" value=\"/\""), "{page}");
    let (status, h, _) = post(
        &c,
        &server,
        "/login",
        &[
            ("csrf", &token),
            ("username", "alice"),
            ("password", "correct horse battery"),
            ("next", "//evil.example/"),
        ],
    );
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(h["location"], "/");
}

// ---- What the catalog pages show -------------------------------------

fn sreg(home: &Path, env: &[(&str, &str)], args: &[&str], cwd: &Path) -> Output {
    let out = Command::new(bin("sreg"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run sreg");
    assert!(out.status.success(), "sreg {args:?}: {out:?}");
    out
}

/// A number shown on the home page, by its element id.
fn total(html: &str, id: &str) -> String {
    let key = format!("id=\"{id}\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {id} in {html}"));
    let rest = &html[at..];
    let rest = if id == "total-bytes" {
        // title="N bytes" carries the exact number.
        let t = rest.find("title=\"").unwrap() + "title=\"".len();
        &rest[t..]
    } else {
        &rest[rest.find('>').unwrap() + 1..]
    };
    rest[..rest.find(['<', ' ']).unwrap()].to_string()
}

fn totals(html: &str) -> [String; 5] {
    ["collections", "containers", "images", "bytes", "pulls"]
        .map(|k| total(html, &format!("total-{k}")))
}

#[test]
fn home_and_collections_count_only_what_the_visitor_may_see() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--data-dir", "data"]);
    let alice = server.user_with_token("alice", false);
    server.user_with_token("bob", false);
    server.user_with_token("root", true);
    for u in ["alice", "bob", "root"] {
        set_password(&server, u, "long enough pw");
    }
    let api = reqwest::blocking::Client::new();
    let r = api
        .post(format!("{}/api/v1/collections", server.url))
        .bearer_auth(&alice)
        .json(&serde_json::json!({ "name": "secret", "private": true }))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text());

    let home = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    write_sif(&work.join("pub.sif"), "amd64", 40_000, 1);
    write_sif(&work.join("secret.sif"), "amd64", 70_000, 2);
    let pub_size = std::fs::metadata(work.join("pub.sif")).unwrap().len();
    let secret_size = std::fs::metadata(work.join("secret.sif")).unwrap().len();
    let env = [
        ("SREG_REGISTRY", server.url.as_str()),
        ("SREG_TOKEN", alice.as_str()),
    ];
    sreg(
        home.path(),
        &env,
        &["push", "pub.sif", "alice/tools/app:1.0"],
        &work,
    );
    sreg(
        home.path(),
        &env,
        &["push", "secret.sif", "alice/secret/hidden:1.0"],
        &work,
    );
    // Pulls: one of the public image, two of the private one.
    sreg(
        home.path(),
        &env,
        &["pull", "alice/tools/app:1.0", "-o", "p1.sif"],
        &work,
    );
    for n in ["s1.sif", "s2.sif"] {
        sreg(
            home.path(),
            &env,
            &["pull", "alice/secret/hidden:1.0", "-o", n],
            &work,
        );
    }

    let public = ["1", "1", "1", &pub_size.to_string(), "1"].map(String::from);
    let all = ["2", "2", "2", &(pub_size + secret_size).to_string(), "3"].map(String::from);

    // Anonymous, and bob who has nothing to do with the private collection.
    let anon = browser();
    let bob = browser();
    assert_eq!(
        sign_in(&bob, &server, "bob", "long enough pw").0,
        StatusCode::SEE_OTHER
    );
    for (who, c) in [("anonymous", &anon), ("bob", &bob)] {
        let (status, _, page) = get(c, &server, "/");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(totals(&page), public, "{who}: {page}");
        assert!(page.contains("alice/tools</a>/app"), "{who}: {page}");
        assert!(
            !page.contains("alice/secret") && !page.contains("/hidden"),
            "{who}: {page}"
        );
        let (_, _, list) = get(c, &server, "/collections");
        assert!(list.contains("href=\"/c/alice/tools\""), "{who}: {list}");
        assert!(!list.contains("secret"), "{who}: {list}");
        // The private collection's page does not exist for them, exactly
        // like one that does not exist at all.
        let (status, _, missing) = get(c, &server, "/c/alice/secret");
        assert_eq!(status, StatusCode::NOT_FOUND, "{who}");
        let (status, _, none) = get(c, &server, "/c/alice/nothing");
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(missing, none, "{who}: a private collection is told apart");
        let (status, _, page) = get(c, &server, "/c/alice/tools");
        assert_eq!(status, StatusCode::OK, "{who}");
        assert!(
            page.contains(">app<") && page.contains(">1.0<"),
            "{who}: {page}"
        );
    }

    // The owner and an admin see everything, the private collection marked.
    for user in ["alice", "root"] {
        let c = browser();
        assert_eq!(
            sign_in(&c, &server, user, "long enough pw").0,
            StatusCode::SEE_OTHER
        );
        let (_, _, page) = get(&c, &server, "/");
        assert_eq!(totals(&page), all, "{user}: {page}");
        assert!(
            page.contains("alice/secret</a>/hidden <span class=\"badge private\">"),
            "{user}: {page}"
        );
        let (_, _, list) = get(&c, &server, "/collections");
        assert!(list.contains("href=\"/c/alice/secret\""), "{user}: {list}");
        let (status, _, page) = get(&c, &server, "/c/alice/secret");
        assert_eq!(status, StatusCode::OK, "{user}");
        assert!(page.contains(">hidden<"), "{user}: {page}");
        // Most pulled: the private container (2) before the public one (1).
        let (_, _, home_page) = get(&c, &server, "/");
        let table = &home_page[home_page.find("id=\"popular\"").unwrap()..];
        assert!(
            table.find("hidden").unwrap() < table.find("/app").unwrap(),
            "{user}: {table}"
        );
    }
}
