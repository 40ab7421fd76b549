//! The `sql` plugin against real MariaDB, PostgreSQL and SQLite: Dolibarr-style open invoices.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use common::db::{self, TestDb};

const RULES: &str = r#"
timeout: 2s
default: receptie
lookups: [invoices, invoices_last9, by_raw]
rules:
  - name: Open invoices go to Finance
    when: invoices.open_count > 0
    route: finance
  - name: Open invoices, matched on the last nine digits
    when: invoices_last9.open_count > 0
    route: finance_last9
  - name: Raw number found (never, for injection attempts)
    when: by_raw.rows.len() > 0
    route: raw_match
"#;

struct Dialect {
    amount: &'static str,
    last9: &'static str,
}

const MARIADB: Dialect = Dialect {
    amount: "DOUBLE(24,8)",
    last9: "RIGHT(REGEXP_REPLACE(s.phone, '[^0-9]', ''), 9)",
};
const POSTGRES: Dialect = Dialect {
    amount: "NUMERIC(24,8)",
    last9: "right(regexp_replace(s.phone, '[^0-9]', '', 'g'), 9)",
};
const SQLITE: Dialect = Dialect {
    amount: "REAL",
    last9: "substr(replace(replace(replace(replace(replace(s.phone, ' ', ''), '-', ''), '(', ''), ')', ''), '+', ''), -9)",
};

async fn dolibarr(db: &TestDb, dialect: &Dialect) {
    let create_facture = format!(
        "CREATE TABLE llx_facture (rowid INTEGER PRIMARY KEY, fk_soc INTEGER, total_ttc {}, paye SMALLINT, fk_statut SMALLINT)",
        dialect.amount
    );
    db.run(&[
        "CREATE TABLE llx_societe (rowid INTEGER PRIMARY KEY, nom VARCHAR(128), phone VARCHAR(30), phone_normalized VARCHAR(20))",
        &create_facture,
        // Numbers as people type them, and the normalised column an import job keeps.
        "INSERT INTO llx_societe VALUES (1, 'Bakkerij Jansen', '015-2026057', '+31152026057')",
        "INSERT INTO llx_societe VALUES (2, 'Betaald BV', '+31 (0)20 123 4567', '+31201234567')",
        "INSERT INTO llx_societe VALUES (3, 'Handmatig', '+31 (0)10 238 0095', NULL)",
        "INSERT INTO llx_facture VALUES (10, 1, 121.00, 0, 1)",
        "INSERT INTO llx_facture VALUES (11, 1, 50.50, 0, 1)",
        "INSERT INTO llx_facture VALUES (12, 2, 99.00, 1, 2)",
        "INSERT INTO llx_facture VALUES (13, 3, 10.00, 0, 1)",
    ])
    .await;
}

fn config(url: &str, dialect: &Dialect) -> String {
    format!(
        r#"plugins:
  invoices:
    kind: sql
    url: "{url}"
    query: >
      SELECT COUNT(*) AS open_count, COALESCE(SUM(f.total_ttc), 0) AS open_amount
      FROM llx_facture f JOIN llx_societe s ON s.rowid = f.fk_soc
      WHERE f.paye = 0 AND f.fk_statut = 1 AND s.phone_normalized = :caller_e164
    facts: {{ open_count: int, open_amount: float }}
    cache: {{ ttl: 60s, negative_ttl: 30s }}
    timeout: 800ms
  invoices_last9:
    kind: sql
    url: "{url}"
    query: >
      SELECT COUNT(*) AS open_count FROM llx_facture f JOIN llx_societe s ON s.rowid = f.fk_soc
      WHERE f.paye = 0 AND f.fk_statut = 1 AND {last9} = :caller_last9
    facts: {{ open_count: int }}
  by_raw:
    kind: sql
    url: "{url}"
    result: rows
    query: SELECT nom FROM llx_societe s WHERE s.phone = :caller_raw OR s.nom = :caller_raw
"#,
        last9 = dialect.last9
    )
}

async fn invoices_route_to_finance(db: TestDb, dialect: &Dialect) {
    dolibarr(&db, dialect).await;
    let server = TestServer::with_config(&[("main.yaml", RULES)], &config(&db.url, dialect)).await;
    assert_eq!(server.route("main", "31152026057").await, "finance");
    assert_eq!(server.route("main", "0031 15 202 6057").await, "finance");
    assert_eq!(
        server.route("main", "31201234567").await,
        "receptie",
        "paid invoices only"
    );
    assert_eq!(
        server.route("main", "31612345678").await,
        "receptie",
        "unknown caller"
    );
    assert_eq!(
        server.route("main", "31102380095").await,
        "finance_last9",
        "matched on the hand-typed number"
    );

    // Bound, never spliced: an injection attempt finds nothing and breaks nothing.
    for attack in [
        "x' OR '1'='1",
        "'; DROP TABLE llx_facture; --",
        "1 OR 1=1",
        "\\' OR 1=1 -- ",
    ] {
        assert_eq!(server.route("main", attack).await, "receptie", "{attack}");
    }
    assert_eq!(
        server.route("main", "31152026057").await,
        "finance",
        "the tables are intact"
    );
    assert_eq!(
        server.route("main", "Bakkerij Jansen").await,
        "raw_match",
        "the raw plugin does match real values"
    );
    server.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn mariadb_open_invoices_route_to_finance() {
    let Some(db) = db::mysql("mariadb_open_invoices_route_to_finance").await else {
        return;
    };
    invoices_route_to_finance(db, &MARIADB).await;
}

#[tokio::test]
async fn postgres_open_invoices_route_to_finance() {
    let Some(db) = db::postgres("postgres_open_invoices_route_to_finance").await else {
        return;
    };
    invoices_route_to_finance(db, &POSTGRES).await;
}

#[tokio::test]
async fn sqlite_open_invoices_route_to_finance() {
    let dir = tempfile::tempdir().unwrap();
    invoices_route_to_finance(db::sqlite(dir.path()), &SQLITE).await;
}

/// Facts keep their types: counts are integers and amounts numbers, on every database.
#[tokio::test]
async fn facts_have_the_column_types() {
    let rules = "default: x\nlookups: [invoices]\nrules:\n  - name: Echo\n    script: '`${type_of(invoices.open_count)}/${type_of(invoices.open_amount)}/${invoices.open_amount}`'\n";
    let mut dbs: Vec<(TestDb, &Dialect)> = Vec::new();
    if let Some(db) = db::mysql("facts_have_the_column_types (MariaDB)").await {
        dbs.push((db, &MARIADB));
    }
    if let Some(db) = db::postgres("facts_have_the_column_types (PostgreSQL)").await {
        dbs.push((db, &POSTGRES));
    }
    let dir = tempfile::tempdir().unwrap();
    dbs.push((db::sqlite(dir.path()), &SQLITE));
    for (db, dialect) in dbs {
        dolibarr(&db, dialect).await;
        let server = TestServer::with_config(
            &[("main.yaml", rules)],
            &config(&db.url, dialect).replace("lookups: [invoices, invoices_last9, by_raw]", ""),
        )
        .await;
        assert_eq!(
            server.route("main", "31152026057").await,
            "i64/f64/171.5",
            "{}",
            db.url
        );
        server.stop().await;
        db.drop().await;
    }
}

/// A database that is down (nothing listens) costs the lookup, never the call.
#[tokio::test]
async fn a_dead_database_never_holds_a_call() {
    let rules = "timeout: 1s\ndefault: receptie\nlookups: [invoices]\nrules:\n  - name: Finance\n    when: invoices.open_count > 0\n    route: finance\n  - name: Mobile\n    when: caller.kind == \"mobile\"\n    route: mobiel\n";
    for url in [
        "mysql://root@127.0.0.1:1/none",
        "postgres://postgres@127.0.0.1:1/none",
    ] {
        let config = format!(
            "plugins:\n  invoices:\n    kind: sql\n    url: \"{url}\"\n    query: SELECT 1 AS open_count WHERE 'x' = :caller_e164\n    facts: {{ open_count: int }}\n"
        );
        let server = TestServer::with_config(&[("main.yaml", rules)], &config).await;
        let started = Instant::now();
        assert_eq!(server.route("main", "0612345678").await, "mobiel", "{url}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{url}: {:?}",
            started.elapsed()
        );
        server.stop().await;
    }
}

/// `check --probe` asks each database for the query's columns: a declared fact the query does
/// not answer, or of another type, fails the check with the fix; the same config without the
/// mistakes passes.
#[tokio::test]
async fn check_probe_finds_a_declared_fact_the_query_does_not_answer() {
    let mut dbs: Vec<(TestDb, &Dialect)> = Vec::new();
    if let Some(db) = db::mysql("check_probe (MariaDB)").await {
        dbs.push((db, &MARIADB));
    }
    if let Some(db) = db::postgres("check_probe (PostgreSQL)").await {
        dbs.push((db, &POSTGRES));
    }
    for (db, dialect) in dbs {
        dolibarr(&db, dialect).await;
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        std::fs::write(
            rules.join("main.yaml"),
            "default: receptie\nlookups: [invoices]\nrules:\n  - name: Finance\n    when: invoices.open_count > 0\n    route: finance\ntests:\n  - name: t\n    expect: receptie\n",
        )
        .unwrap();
        let config = |facts: &str| {
            format!(
                "plugins:\n  invoices:\n    kind: sql\n    url: \"{}\"\n    query: >\n      SELECT COUNT(*) AS open_count, COALESCE(SUM(f.total_ttc), 0) AS open_amount\n      FROM llx_facture f JOIN llx_societe s ON s.rowid = f.fk_soc\n      WHERE f.paye = 0 AND s.phone_normalized = :caller_e164\n    facts: {facts}\n",
                db.url
            )
        };
        let check = |facts: &str| {
            let file = dir.path().join("belroute.yaml");
            std::fs::write(&file, config(facts)).unwrap();
            let output = common::binary::belroute()
                .args([
                    "check",
                    "--probe",
                    "--rules",
                    rules.to_str().unwrap(),
                    "--config",
                    file.to_str().unwrap(),
                ])
                .output()
                .unwrap();
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).to_string(),
            )
        };
        let (code, out) = check("{ open_count: int, open_cnt: int, open_amount: text }");
        assert_eq!(code, Some(1), "{}: {out}", db.url);
        assert!(
            out.contains("plugins.invoices: `facts:` declares `open_cnt`, which the query does not answer; did you mean `open_count`? it answers: open_count, open_amount"),
            "{}: {out}",
            db.url
        );
        assert!(
            out.contains("plugins.invoices: `facts:` declares `open_amount` as text, but the query answers float"),
            "{}: {out}",
            db.url
        );
        let (code, out) = check("{ open_count: int, open_amount: float }");
        assert_eq!(code, Some(0), "{}: {out}", db.url);
        println!("{}: check --probe: ok", db.url.split(':').next().unwrap());
        db.drop().await;
    }
}
