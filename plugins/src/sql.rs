//! `kind: sql` — a CRM database (PostgreSQL, MySQL/MariaDB or SQLite) asked one query per
//! caller, with the caller's forms bound as parameters: never spliced into the SQL.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use belroute_engine::settings::{Range, Secret, Section, value};
use belroute_engine::vocabulary::{DeclaredFacts, FactType};
use belroute_engine::{Facts, Lookup, LookupError, LookupRequest};
use futures_util::TryStreamExt;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Column, Row, TypeInfo};

use crate::params::{self, Placeholders, SqlQuery};

/// Rows read at most for `result: rows`.
const MAX_ROWS: usize = 100;

/// Settings of an `sql` plugin.
#[derive(Debug, Clone)]
pub struct SqlConfig {
    /// `postgres://…`, `mysql://…` (MariaDB too) or `sqlite://…`; usually `${CRM_DB_URL}`.
    pub url: Secret,
    /// The query, with `:caller_e164`-style parameters.
    pub query: String,
    /// `row`: the first row's columns are the facts; no row is "not found".
    /// `rows`: facts are `{rows: [...], count: n}`; no rows is "not found".
    pub result: ResultShape,
    /// Connections kept to the CRM database.
    pub max_connections: u32,
    /// The columns the query answers and their types (`result: row`): what rules may read.
    pub facts: Option<DeclaredFacts>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResultShape {
    #[default]
    Row,
    Rows,
}

impl SqlConfig {
    pub const KEYS: [&'static str; 5] = ["url", "query", "result", "max_connections", "facts"];

    /// What rules may read: the declared columns, or `rows` and `count` for `result: rows`.
    pub fn declared_facts(&self) -> Option<DeclaredFacts> {
        match self.result {
            ResultShape::Rows => Some(Self::rows_facts()),
            ResultShape::Row => self.facts.clone(),
        }
    }

    /// The facts of `result: rows`.
    pub fn rows_facts() -> DeclaredFacts {
        [("rows", FactType::List), ("count", FactType::Int)]
            .into_iter()
            .map(|(name, kind)| (name.to_string(), kind))
            .collect()
    }
    pub const MAX_CONNECTIONS: Range<u32> = Range::new(1, 100);

    /// Reads `kind: sql` settings, reporting each problem at its key.
    pub fn read(s: &mut Section<'_, '_, '_>) -> Option<Self> {
        let url = s.required("url", "\"${CRM_DB_URL}\"", value::secret);
        let query = s.required(
            "query",
            "SELECT … WHERE phone_normalized = :caller_e164",
            |n| value::text(n).map(str::to_string),
        );
        let result = s.choice(
            "result",
            ResultShape::Row,
            &[("row", ResultShape::Row), ("rows", ResultShape::Rows)],
        );
        let max_connections = s.count("max_connections", 4, Self::MAX_CONNECTIONS);
        let facts = s
            .map("facts", |_, node| value::fact_type(node))
            .map(|facts| facts.into_iter().collect::<DeclaredFacts>());
        if facts.is_some() && result == ResultShape::Rows {
            s.error(
                "facts",
                "is for `result: row`; with `result: rows` the facts are always `rows` (the list of rows) and `count`",
            );
        }
        let driver = url.as_ref().and_then(|url| match Driver::of(url.expose()) {
            Ok(driver) => Some(driver),
            Err(e) => {
                s.error("url", e);
                None
            }
        });
        if let (Some(driver), Some(query)) = (driver, &query)
            && let Err(e) = SqlQuery::parse(query, driver.placeholders())
        {
            s.error("query", format!(": {e}"));
        }
        Some(SqlConfig {
            url: url?,
            query: query?,
            result,
            max_connections,
            facts,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    Postgres,
    MySql,
    Sqlite,
}

impl Driver {
    fn of(url: &str) -> Result<Self, String> {
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Ok(Driver::Postgres),
            "mysql" | "mariadb" => Ok(Driver::MySql),
            "sqlite" => Ok(Driver::Sqlite),
            _ => Err("must start with postgres://, mysql:// (MariaDB too) or sqlite://".into()),
        }
    }

    fn placeholders(self) -> Placeholders {
        match self {
            Driver::Postgres => Placeholders::Dollar,
            Driver::MySql | Driver::Sqlite => Placeholders::Question,
        }
    }
}

impl SqlConfig {
    /// Creates the pool without connecting: belroute starts even while the CRM is down.
    pub fn build(&self, timeout: Duration) -> Result<SqlLookup, String> {
        let driver = Driver::of(self.url.expose()).map_err(|e| format!("`url` {e}"))?;
        let query = SqlQuery::parse(&self.query, driver.placeholders())?;
        let url = self.url.expose();
        let bad_url = |e: sqlx::Error| format!("`url` is not usable: {}", redact(&e.to_string()));
        macro_rules! pool {
            ($options:ty) => {
                <$options>::new()
                    .max_connections(self.max_connections)
                    .min_connections(0)
                    // A dead database cannot hold a call: waiting for a connection ends with the
                    // plugin's timeout (and the call's deadline ends waiting sooner).
                    .acquire_timeout(timeout)
                    .idle_timeout(Duration::from_secs(60))
                    .connect_lazy(url)
                    .map_err(bad_url)?
            };
        }
        let pool = match driver {
            Driver::Postgres => Pool::Postgres(pool!(sqlx::postgres::PgPoolOptions)),
            Driver::MySql => Pool::MySql(pool!(sqlx::mysql::MySqlPoolOptions)),
            Driver::Sqlite => Pool::Sqlite(pool!(sqlx::sqlite::SqlitePoolOptions)),
        };
        Ok(SqlLookup {
            declared: self.declared_facts(),
            sql: Arc::from(query.sql.as_str()),
            binds: query.binds,
            result: self.result,
            pool,
        })
    }
}

/// Error texts from drivers may quote the URL; its password must not reach a log.
fn redact(text: &str) -> String {
    match (text.find("://"), text.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &text[..scheme], &text[at..])
        }
        _ => text.to_string(),
    }
}

enum Pool {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

/// A built `sql` plugin.
pub struct SqlLookup {
    declared: Option<DeclaredFacts>,
    sql: Arc<str>,
    binds: Vec<String>,
    result: ResultShape,
    pool: Pool,
}

impl std::fmt::Debug for SqlLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlLookup")
            .field("sql", &self.sql)
            .field("binds", &self.binds)
            .finish_non_exhaustive()
    }
}

/// Runs the query on one driver's pool and turns rows into JSON objects.
macro_rules! fetch_rows {
    ($pool:expr, $sql:expr, $values:expr, $limit:expr, $decimal:ident) => {{
        // The query text is the operator's own configuration; call data is only ever bound.
        let mut query = sqlx::query(AssertSqlSafe($sql));
        for value in $values {
            query = query.bind(value);
        }
        let mut rows = query.fetch($pool);
        let mut out = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(db_error)? {
            let mut object = Facts::new();
            for (i, column) in row.columns().iter().enumerate() {
                object.insert(
                    column.name().to_string(),
                    decode!(row, i, column.type_info().name(), $decimal),
                );
            }
            out.push(object);
            if out.len() >= $limit {
                break;
            }
        }
        out
    }};
}

/// One column as JSON, trying the Rust types the drivers decode.
macro_rules! decode {
    ($row:expr, $i:expr, $type_name:expr, decimal) => {{
        let row = &$row;
        match row.try_get::<Option<rust_decimal::Decimal>, _>($i) {
            Ok(v) => v.map(decimal).unwrap_or(Value::Null),
            Err(_) => decode!($row, $i, $type_name, plain),
        }
    }};
    ($row:expr, $i:expr, $type_name:expr, plain) => {{
        let row = &$row;
        if let Ok(v) = row.try_get::<Option<i64>, _>($i) {
            v.map(Value::from).unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<i32>, _>($i) {
            v.map(Value::from).unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<i16>, _>($i) {
            v.map(Value::from).unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<f64>, _>($i) {
            v.map(Value::from).unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<f32>, _>($i) {
            v.map(|f| Value::from(f64::from(f))).unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<bool>, _>($i) {
            v.map(Value::from).unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<String>, _>($i) {
            v.map(Value::from).unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>($i) {
            v.map(|t| Value::from(t.to_rfc3339()))
                .unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<chrono::NaiveDateTime>, _>($i) {
            v.map(|t| Value::from(t.format("%Y-%m-%dT%H:%M:%S").to_string()))
                .unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<chrono::NaiveDate>, _>($i) {
            v.map(|t| Value::from(t.to_string())).unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<serde_json::Value>, _>($i) {
            v.unwrap_or(Value::Null)
        } else {
            return Err(LookupError::Misconfigured(format!(
                "column {} has type {} which belroute cannot read; CAST it in the query",
                $i, $type_name
            )));
        }
    }};
}

/// DECIMAL/NUMERIC: a JSON number when it fits a float exactly enough for rules, else text.
fn decimal(d: rust_decimal::Decimal) -> Value {
    use rust_decimal::prelude::ToPrimitive;
    if d.fract().is_zero()
        && let Some(i) = d.to_i64()
    {
        return Value::from(i);
    }
    d.to_f64()
        .map(Value::from)
        .unwrap_or_else(|| Value::from(d.to_string()))
}

fn db_error(e: sqlx::Error) -> LookupError {
    match e {
        sqlx::Error::PoolTimedOut => LookupError::Timeout,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_) => LookupError::Unavailable(redact(&e.to_string())),
        sqlx::Error::Database(db) => {
            LookupError::Misconfigured(format!("the database refused the query: {db}"))
        }
        other => LookupError::Unavailable(redact(&other.to_string())),
    }
}

impl SqlLookup {
    /// The columns the query answers, with their types where the driver says (`check
    /// --probe`): asked of the database by preparing the query, without running it.
    pub async fn columns(&self) -> Result<Vec<(String, Option<FactType>)>, String> {
        use sqlx::{Executor, Statement};
        macro_rules! describe {
            ($pool:expr) => {{
                let statement = $pool
                    .prepare(sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(
                        self.sql.clone(),
                    )))
                    .await
                    .map_err(|e| db_error(e).to_string())?;
                statement
                    .columns()
                    .iter()
                    .map(|c| (c.name().to_string(), column_type(c.type_info().name())))
                    .collect()
            }};
        }
        Ok(match &self.pool {
            Pool::Postgres(pool) => describe!(pool),
            Pool::MySql(pool) => describe!(pool),
            Pool::Sqlite(pool) => describe!(pool),
        })
    }
}

/// A column type, as PostgreSQL, MariaDB/MySQL and SQLite name them, as the fact it becomes
/// (see `decode!`); `None` where it cannot be told (an SQLite expression has no type).
fn column_type(name: &str) -> Option<FactType> {
    let name = name.to_ascii_uppercase();
    let base = name.split(['(', ' ']).next().unwrap_or_default();
    Some(match base {
        "INT2" | "INT4" | "INT8" | "SMALLINT" | "INT" | "INTEGER" | "BIGINT" | "MEDIUMINT"
        | "TINYINT" | "YEAR" => FactType::Int,
        "FLOAT4" | "FLOAT8" | "REAL" | "DOUBLE" | "FLOAT" | "NUMERIC" | "DECIMAL" => {
            FactType::Float
        }
        "BOOL" | "BOOLEAN" => FactType::Bool,
        "TEXT" | "VARCHAR" | "CHAR" | "BPCHAR" | "NAME" | "TINYTEXT" | "MEDIUMTEXT"
        | "LONGTEXT" | "ENUM" | "DATE" | "TIME" | "DATETIME" | "TIMESTAMP" | "TIMESTAMPTZ"
        | "UUID" => FactType::Text,
        "JSON" | "JSONB" => FactType::Any,
        _ => return None,
    })
}

#[async_trait]
impl Lookup for SqlLookup {
    fn facts(&self) -> Option<DeclaredFacts> {
        self.declared.clone()
    }

    async fn lookup(&self, request: &LookupRequest) -> Result<Option<Facts>, LookupError> {
        let values: Vec<String> = self
            .binds
            .iter()
            .map(|name| params::value(request, name))
            .collect();
        let limit = match self.result {
            ResultShape::Row => 1,
            ResultShape::Rows => MAX_ROWS,
        };
        let sql = self.sql.clone();
        let rows = match &self.pool {
            Pool::Postgres(pool) => fetch_rows!(pool, sql, values, limit, decimal),
            Pool::MySql(pool) => fetch_rows!(pool, sql, values, limit, decimal),
            Pool::Sqlite(pool) => fetch_rows!(pool, sql, values, limit, plain),
        };
        Ok(match self.result {
            ResultShape::Row => rows.into_iter().next(),
            ResultShape::Rows if rows.is_empty() => None,
            ResultShape::Rows => {
                let mut facts = Facts::new();
                facts.insert("count".into(), Value::from(rows.len()));
                facts.insert(
                    "rows".into(),
                    Value::Array(rows.into_iter().map(Value::Object).collect()),
                );
                Some(facts)
            }
        })
    }

    fn cache_key(&self, request: &LookupRequest) -> Option<String> {
        if request.caller.anonymous {
            return None;
        }
        Some(
            self.binds
                .iter()
                .map(|name| params::value(request, name))
                .collect::<Vec<_>>()
                .join("\u{1f}"),
        )
    }

    fn keyed_on_caller(&self) -> bool {
        self.binds.iter().any(|name| params::is_number_param(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("error connecting to mysql://root:pw@db:3306/x"),
            "error connecting to mysql://***@db:3306/x"
        );
    }
}
