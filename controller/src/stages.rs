//! `--stages` resolved against the flags it replaces or shapes: the run's
//! length (stages and `--duration` exclude each other), the warmup (the first
//! part of the stages, 0 unless given), the load model (users: closed, rates:
//! open, never with `--rate`) and the number of users (the peak by default).

use std::time::Duration;

use anyhow::bail;
use common::load::{self, Stage, StageUnit, StagesText};
use common::protocol::LoadModel;

/// What the stages make of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Staged {
    pub stages: Vec<Stage>,
    pub unit: StageUnit,
    pub load: LoadModel,
    pub warmup: Duration,
    /// The measured part: the stages' length less the warmup.
    pub duration: Duration,
    pub n_users: u32,
}

/// The flags `--stages` meets.
#[derive(Debug, Clone, Copy)]
pub struct Others {
    pub duration: Option<Duration>,
    pub warmup: Option<Duration>,
    pub rate: Option<f64>,
    pub users: Option<u32>,
    /// Users when neither the stages nor `--users` say (2 per agent).
    pub default_users: u32,
    pub think_time: Duration,
}

pub fn resolve(text: &str, o: Others) -> anyhow::Result<Staged> {
    let (stages, unit) = load::parse_stages(text)?;
    let total = load::total_duration(&stages);
    let shown = StagesText(&stages, unit);
    if let Some(d) = o.duration {
        bail!(
            "--stages {shown} and --duration {} cannot be used together: the stages set the run's length ({}); drop --duration",
            common::duration::format_duration(d),
            common::duration::format_duration(total)
        );
    }
    if o.rate.is_some() {
        bail!(
            "--stages and --rate cannot be used together: write the rates into the stages (e.g. 30s:10/s,60s:50/s) for the open model"
        );
    }
    let warmup = o.warmup.unwrap_or(Duration::ZERO);
    if warmup >= total {
        bail!(
            "--warmup {} is not shorter than --stages {shown} ({}): the warmup is the first part of the stages",
            common::duration::format_duration(warmup),
            common::duration::format_duration(total)
        );
    }
    let peak = load::peak(&stages);
    let (load, n_users) = match unit {
        StageUnit::Users => {
            // Whole numbers (checked by the parser), so the cast is exact.
            let peak = peak as u32;
            if peak == 0 {
                bail!("--stages {shown} never asks for a user: give some stage a target above 0");
            }
            let n_users = o.users.unwrap_or(peak);
            if n_users < peak {
                bail!(
                    "--users {n_users} is fewer than the {peak} active users --stages {shown} asks for: raise --users or drop it (it defaults to the peak)"
                );
            }
            (
                LoadModel::Closed {
                    think_time: o.think_time,
                },
                n_users,
            )
        }
        StageUnit::Rate => (
            LoadModel::Open { rate_per_sec: peak },
            o.users.unwrap_or(o.default_users),
        ),
    };
    Ok(Staged {
        stages,
        unit,
        load,
        warmup,
        duration: total - warmup,
        n_users,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn others() -> Others {
        Others {
            duration: None,
            warmup: None,
            rate: None,
            users: None,
            default_users: 6,
            think_time: Duration::ZERO,
        }
    }

    fn check(text: &str, o: Others, expected: Result<(u32, u64, u64, bool), &str>) {
        let got = resolve(text, o);
        match (got, expected) {
            (Ok(s), Ok((users, warmup_ms, duration_ms, open))) => {
                assert_eq!(s.n_users, users, "{text}");
                assert_eq!(s.warmup, Duration::from_millis(warmup_ms), "{text}");
                assert_eq!(s.duration, Duration::from_millis(duration_ms), "{text}");
                assert_eq!(matches!(s.load, LoadModel::Open { .. }), open, "{text}");
            }
            (Err(e), Err(needle)) => {
                let e = format!("{e:#}");
                assert!(e.contains(needle), "{text}: {e}");
            }
            (got, expected) => panic!("{text}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn table() {
        check("10s:4,10s:8,10s:0", others(), Ok((8, 0, 30_000, false)));
        check(
            "10s:4,10s:8,10s:0",
            Others {
                warmup: Some(Duration::from_secs(2)),
                users: Some(10),
                ..others()
            },
            Ok((10, 2_000, 28_000, false)),
        );
        check("5s:20/s,5s:0/s", others(), Ok((6, 0, 10_000, true)));
        check(
            "10s:4",
            Others {
                duration: Some(Duration::from_secs(30)),
                ..others()
            },
            Err("cannot be used together"),
        );
        check(
            "10s:4/s",
            Others {
                rate: Some(3.0),
                ..others()
            },
            Err("--rate"),
        );
        check(
            "10s:4",
            Others {
                users: Some(3),
                ..others()
            },
            Err("--users 3 is fewer than the 4"),
        );
        check(
            "10s:4",
            Others {
                warmup: Some(Duration::from_secs(10)),
                ..others()
            },
            Err("not shorter"),
        );
        check("10s:0", others(), Err("never asks"));
        check("10s:x", others(), Err("DURATION:USERS"));
    }
}
