//! The user journal in `--state-dir`: every user is written (and fsynced)
//! here before it is created and struck when it is deleted, so `controller
//! cleanup` can remove users even after a crash or `kill -9`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use common::ids::UserName;
use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "users.jsonl";

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Op {
    Created,
    Deleted,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    op: Op,
    /// Where the user lives (the admin API's users URL).
    location: String,
    user: UserName,
}

/// Users still to delete, by location.
pub type Pending = BTreeMap<String, BTreeSet<UserName>>;

pub struct Journal {
    path: PathBuf,
    /// Serializes appends from concurrent tasks.
    lock: Mutex<()>,
}

impl Journal {
    pub fn open(state_dir: &Path) -> io::Result<Journal> {
        std::fs::create_dir_all(state_dir)?;
        Ok(Journal {
            path: state_dir.join(FILE_NAME),
            lock: Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends and fsyncs before the users are created.
    pub fn record_created(&self, location: &str, users: &[UserName]) -> io::Result<()> {
        self.append(Op::Created, location, users)
    }

    /// Strikes deleted users; empties the file once nothing is pending.
    pub fn record_deleted(&self, location: &str, users: &[UserName]) -> io::Result<()> {
        self.append(Op::Deleted, location, users)?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if read_pending(&self.path)?.is_empty() {
            File::create(&self.path)?.sync_all()?;
        }
        Ok(())
    }

    pub fn pending(&self) -> io::Result<Pending> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        read_pending(&self.path)
    }

    fn append(&self, op: Op, location: &str, users: &[UserName]) -> io::Result<()> {
        if users.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for user in users {
            let entry = Entry {
                op,
                location: location.to_owned(),
                user: user.clone(),
            };
            text.push_str(&serde_json::to_string(&entry).map_err(io::Error::other)?);
            text.push('\n');
        }
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(text.as_bytes())?;
        file.sync_data()
    }
}

fn read_pending(path: &Path) -> io::Result<Pending> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Pending::new()),
        Err(e) => return Err(e),
    };
    let mut pending = Pending::new();
    for line in BufReader::new(file).lines() {
        let line = line?;
        // A torn last line (crash mid-write) is skipped, not fatal.
        let Ok(entry) = serde_json::from_str::<Entry>(&line) else {
            continue;
        };
        let set = pending.entry(entry.location).or_default();
        match entry.op {
            Op::Created => {
                set.insert(entry.user);
            }
            Op::Deleted => {
                set.remove(&entry.user);
            }
        }
    }
    pending.retain(|_, users| !users.is_empty());
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_minus_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("state")).unwrap();
        let users: Vec<UserName> = ["a", "b", "c"].map(UserName::from).into();
        j.record_created("http://x", &users).unwrap();
        j.record_deleted("http://x", &users[..2]).unwrap();
        let p = j.pending().unwrap();
        assert_eq!(
            p["http://x"].iter().collect::<Vec<_>>(),
            vec![&UserName::from("c")]
        );
        j.record_deleted("http://x", &users[2..]).unwrap();
        assert!(j.pending().unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(j.path()).unwrap(), "");
    }
}
