//! The throwaway server starts, takes connections and queries, keeps two clusters apart, and
//! is gone once dropped.

use mailroom_pg_test::TestPostgres;
use sqlx::Connection as _;

#[tokio::test]
async fn a_throwaway_cluster_answers_and_is_gone_when_dropped() {
    let pg = TestPostgres::start().expect("a throwaway PostgreSQL");
    let other = TestPostgres::start().expect("a second one");
    assert_ne!(pg.port(), other.port());

    let mut conn = sqlx::PgConnection::connect(&pg.url("postgres"))
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE mailroom")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut db = sqlx::PgConnection::connect(&pg.url("mailroom"))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t (name) VALUES ($1)")
        .bind("one")
        .execute(&mut db)
        .await
        .unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM t")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(n, 1);
    // The other cluster has no such database.
    let mut elsewhere = sqlx::PgConnection::connect(&other.url("postgres"))
        .await
        .unwrap();
    let (exists,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'mailroom')")
            .fetch_one(&mut elsewhere)
            .await
            .unwrap();
    assert!(!exists);
    drop((conn, db, elsewhere));

    let url = pg.url("postgres");
    drop(pg);
    assert!(
        sqlx::PgConnection::connect(&url).await.is_err(),
        "the server stopped with its handle"
    );
}
