//! Test support: every store test runs on both databases, SQLite in a temporary directory and
//! PostgreSQL in a database of its own on a throwaway cluster (`mailroom-pg-test`).

use crate::Store;

/// A store on SQLite, in a temporary directory kept as long as the returned guard.
pub(crate) async fn sqlite() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("m.db")).await.unwrap();
    (dir, store)
}

/// A store on a new, empty PostgreSQL database of the test process's throwaway cluster.
pub(crate) async fn postgres() -> Store {
    let cluster = mailroom_pg_test::TestPostgres::shared().expect("a throwaway PostgreSQL");
    Store::connect(&cluster.new_database().expect("a new database"))
        .await
        .unwrap()
}

/// Runs the test `async fn $name(store: Store)` twice: as `$name::sqlite` and `$name::postgres`.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (_dir, store) = $crate::testing::sqlite().await;
                super::$name(store).await
            }

            #[tokio::test]
            async fn postgres() {
                super::$name($crate::testing::postgres().await).await
            }
        }
    };
}
pub(crate) use on_both;
