//! The queue against a real SQLite database (the HTTP tests in
//! tests/tests/builds_api.rs run the same on PostgreSQL too).

use sreg_api::builds::{JobState, NewBuildProject, Outcome};

use super::jobs::{self, RecipeBuild};
use super::{log, projects};
use crate::db::{Database, now_ms};
use crate::model::{accounts, catalog};
use crate::sealing::Keys;

async fn setup(dir: &std::path::Path) -> (Database, projects::Project, Keys) {
    let db = Database::connect(&format!("sqlite://{}/t.db", dir.display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let keys = Keys::from_master(&[3; 32]);
    let u = accounts::create_user(&db.pool, "alice", "", false)
        .await
        .unwrap();
    let c = catalog::create_collection(&db.pool, u.id, "builds", false, u.id)
        .await
        .unwrap();
    let new = NewBuildProject {
        name: Some("proj".into()),
        repository: Some("https://example.org/r.git".into()),
        agent_labels: Some(vec!["gpu".into()]),
        forge_token: Some("ghp_secret".into()),
        ..Default::default()
    };
    let s = projects::Settings::new(&new, c.id).unwrap();
    let (p, secret) = projects::create(&db.pool, &keys, u.id, &s, None, Some("ghp_secret"))
        .await
        .unwrap();
    assert_eq!(secret.len(), 64);
    assert_eq!(
        projects::webhook_secret(&db.pool, &keys, p.id)
            .await
            .unwrap(),
        Some(secret.into_bytes())
    );
    assert_eq!(
        projects::forge_token(&db.pool, &keys, p.id)
            .await
            .unwrap()
            .as_deref(),
        Some("ghp_secret")
    );
    (db, p, keys)
}

fn recipe(path: &str) -> RecipeBuild {
    RecipeBuild {
        path: path.into(),
        name: path.to_lowercase(),
        tag: "latest".into(),
    }
}

#[tokio::test]
async fn queue_lease_log_finish_and_reap() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, p, _) = setup(tmp.path()).await;
    let db = &db.pool;
    let a = "a".repeat(40);
    let b = "b".repeat(40);
    let done = jobs::enqueue(db, &p, &a, "main", &[recipe("x"), recipe("y")], 2)
        .await
        .unwrap();
    assert_eq!(done.queued.len(), 2);
    assert_eq!(done.queued[0].reference, "alice/builds/x:latest");
    // The same delivery again: nothing new.
    let again = jobs::enqueue(db, &p, &a, "main", &[recipe("x")], 2)
        .await
        .unwrap();
    assert!(again.queued.is_empty() && again.duplicates == ["x"]);
    // A newer commit supersedes the queued x.
    let newer = jobs::enqueue(db, &p, &b, "main", &[recipe("x")], 2)
        .await
        .unwrap();
    assert_eq!(newer.superseded.len(), 1);
    assert_eq!(newer.superseded[0].state, JobState::Superseded);
    assert!(newer.superseded[0].error.as_deref().unwrap().contains(&b));

    // Labels: an agent without "gpu" gets nothing.
    assert!(jobs::lease(db, "cpu", &[], 60_000).await.unwrap().is_none());
    let (lease, job) = jobs::lease(db, "g", &["gpu".into()], 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.recipe_path, "y", "oldest first");
    assert!(
        jobs::heartbeat(db, job.id, "lease_wrong", 1000)
            .await
            .is_err()
    );
    assert!(!jobs::heartbeat(db, job.id, &lease, 60_000).await.unwrap());

    assert_eq!(
        log::append(db, job.id, &lease, 0, b"hello ").await.unwrap(),
        6
    );
    assert_eq!(
        log::append(db, job.id, &lease, 0, b"hello ").await.unwrap(),
        6
    );
    assert_eq!(
        log::append(db, job.id, &lease, 3, b"lo world")
            .await
            .unwrap(),
        11
    );
    assert!(log::append(db, job.id, &lease, 20, b"gap").await.is_err());
    assert!(log::append(db, job.id, "lease_x", 11, b"!").await.is_err());
    assert_eq!(log::read(db, job.id, 0, 100).await.unwrap(), b"hello world");
    assert_eq!(log::read(db, job.id, 4, 3).await.unwrap(), b"o w");
    assert_eq!(log::read(db, job.id, 11, 100).await.unwrap(), b"");

    assert!(
        jobs::finish(db, job.id, &lease, Outcome::Succeeded, None, None)
            .await
            .is_err(),
        "success needs the image sha256"
    );
    let sha = "c".repeat(64);
    let fin = jobs::finish(db, job.id, &lease, Outcome::Succeeded, None, Some(&sha))
        .await
        .unwrap();
    assert_eq!(fin.state(), JobState::Succeeded);
    assert!(
        jobs::heartbeat(db, job.id, &lease, 1000).await.is_err(),
        "lease gone"
    );

    // Lease expiry: queued again, then failed after max_attempts (2).
    let (_, x) = jobs::lease(db, "g", &["gpu".into()], 0)
        .await
        .unwrap()
        .unwrap();
    let reaped = jobs::reap(db, now_ms() + 1).await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].state(), JobState::Queued);
    assert!(reaped[0].error.as_deref().unwrap().contains("lease lost"));
    let (_, x2) = jobs::lease(db, "g", &["gpu".into()], 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((x2.id, x2.attempts), (x.id, 2));
    let reaped = jobs::reap(db, now_ms() + 1).await.unwrap();
    assert_eq!(reaped[0].state(), JobState::Failed);

    // Cancel: queued at once; finished ones refuse.
    let c = jobs::enqueue(db, &p, &a, "main", &[recipe("z")], 2)
        .await
        .unwrap();
    let z = jobs::cancel(db, c.queued[0].id, "alice").await.unwrap();
    assert_eq!(z.state(), JobState::Cancelled);
    assert!(jobs::cancel(db, z.id, "alice").await.is_err());
    let listed = jobs::list(db, &[p.id], Some(JobState::Cancelled), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}
