//! A database URL read once: which engine, and for SQLite which file (or none, in memory).
//! Opening, the spill file's place, `migrate`'s message and `serve`'s clean-up all ask this.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

/// belroute's own database, as `--database` / `BELROUTE_DATABASE` / `DATABASE_URL` name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://FILE` (a relative FILE is under the working directory).
    SqliteFile { url: String, file: PathBuf },
    /// `sqlite::memory:` or `mode=memory`: gone when belroute stops.
    SqliteMemory { url: String },
    /// `postgres://…` or `postgresql://…`.
    Postgres { url: String },
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let owned = url.to_string();
        match url.split(':').next().unwrap_or_default() {
            "sqlite" if url.contains(":memory:") || url.contains("mode=memory") => {
                Ok(DatabaseUrl::SqliteMemory { url: owned })
            }
            "sqlite" => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|e| format!("database URL `{url}`: {e}"))?;
                let file = options.get_filename().to_path_buf();
                if file.as_os_str().is_empty() {
                    return Err(format!(
                        "database URL `{url}` names no file: write sqlite://FILE (the default is sqlite://belroute.db)"
                    ));
                }
                Ok(DatabaseUrl::SqliteFile { url: owned, file })
            }
            "postgres" | "postgresql" => Ok(DatabaseUrl::Postgres { url: owned }),
            _ => Err(format!(
                "database URL `{url}`: use sqlite://FILE (the default is sqlite://belroute.db) or postgres://…"
            )),
        }
    }
}

impl DatabaseUrl {
    pub fn as_str(&self) -> &str {
        match self {
            DatabaseUrl::SqliteFile { url, .. }
            | DatabaseUrl::SqliteMemory { url }
            | DatabaseUrl::Postgres { url } => url,
        }
    }

    /// The SQLite file, when it is one.
    pub fn sqlite_file(&self) -> Option<&Path> {
        match self {
            DatabaseUrl::SqliteFile { file, .. } => Some(file),
            _ => None,
        }
    }

    /// "PostgreSQL at host:port (database name)" or "SQLite database FILE", without a password.
    pub fn describe(&self) -> String {
        match self {
            DatabaseUrl::Postgres { url } => match PgConnectOptions::from_str(url) {
                Ok(options) => format!(
                    "PostgreSQL at {}:{} (database {})",
                    options.get_host(),
                    options.get_port(),
                    options.get_database().unwrap_or("(the user's default)")
                ),
                Err(_) => "PostgreSQL".into(),
            },
            DatabaseUrl::SqliteFile { file, .. } => {
                format!("SQLite database {}", file.display())
            }
            DatabaseUrl::SqliteMemory { .. } => "SQLite database in memory".into(),
        }
    }

    /// Where the spill file goes when `storage.spill` is not set: beside a SQLite database
    /// file, else in the working directory.
    pub fn spill_path(&self) -> PathBuf {
        match self.sqlite_file().and_then(Path::parent) {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(super::SPILL_FILE),
            _ => PathBuf::from(super::SPILL_FILE),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_read_once() {
        let file: DatabaseUrl = "sqlite:///var/lib/belroute/calls.db?mode=rwc"
            .parse()
            .unwrap();
        assert_eq!(
            file.sqlite_file(),
            Some(Path::new("/var/lib/belroute/calls.db"))
        );
        assert_eq!(
            file.spill_path(),
            PathBuf::from("/var/lib/belroute/belroute-spill.jsonl")
        );
        let relative: DatabaseUrl = "sqlite://data/belroute.db".parse().unwrap();
        assert_eq!(
            relative.spill_path(),
            PathBuf::from("data/belroute-spill.jsonl")
        );
        let here: DatabaseUrl = "sqlite://belroute.db".parse().unwrap();
        assert_eq!(here.spill_path(), PathBuf::from(super::super::SPILL_FILE));
        assert_eq!(here.describe(), "SQLite database belroute.db");
        let memory: DatabaseUrl = "sqlite::memory:".parse().unwrap();
        assert_eq!(memory.sqlite_file(), None);
        assert_eq!(memory.spill_path(), PathBuf::from(super::super::SPILL_FILE));
        let pg: DatabaseUrl = "postgres://u:secret@db:5433/belroute".parse().unwrap();
        assert_eq!(pg.describe(), "PostgreSQL at db:5433 (database belroute)");
        assert_eq!(pg.spill_path(), PathBuf::from(super::super::SPILL_FILE));
        assert!(
            "mysql://x"
                .parse::<DatabaseUrl>()
                .unwrap_err()
                .contains("sqlite://FILE")
        );
    }
}
