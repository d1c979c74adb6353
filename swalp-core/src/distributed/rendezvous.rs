//! Where a process stands in a group, from its launcher's variables.

use std::time::Duration;

use super::DistributedError;

/// Who started the processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launcher {
    /// `torchrun` or `python -m torch.distributed.run` (or any launcher
    /// setting `RANK`, `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT`).
    Torchrun,
    /// Slurm's `srun`.
    Slurm,
}

/// A process's place in a group and where the group meets, as
/// torch.distributed's `env://` initialisation reads it.
///
/// ```
/// use swalp_core::distributed::{Launcher, Rendezvous};
/// let vars = [("SLURM_PROCID", "1"), ("SLURM_STEP_NUM_TASKS", "4"), ("SLURM_LOCALID", "1"),
///             ("SLURM_STEP_NODELIST", "gpu[07-08]"), ("SLURM_JOB_ID", "4242")];
/// let r = Rendezvous::from_vars(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
///     .unwrap()
///     .unwrap();
/// assert_eq!((r.rank, r.world_size, r.local_rank), (1, 4, 1));
/// assert_eq!(r.master_addr, "gpu07");
/// assert_eq!(r.launcher, Launcher::Slurm);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Rendezvous {
    /// This process's rank, 0 to `world_size - 1`.
    pub rank: usize,
    /// The number of processes.
    pub world_size: usize,
    /// The rank among the processes of this node (the GPU to use).
    pub local_rank: usize,
    /// The host of the store.
    pub master_addr: String,
    /// The store's port.
    pub master_port: u16,
    /// Whether the launcher hosts the store (torchrun's agent does, and says
    /// so with `TORCHELASTIC_USE_AGENT_STORE=True`); otherwise rank 0 does.
    pub agent_store: bool,
    /// How long a rank waits for the others, at joining and in every
    /// collective: `SWALP_DIST_TIMEOUT` seconds, default 300.
    pub timeout: Duration,
    /// Who set the variables.
    pub launcher: Launcher,
}

/// The store port under Slurm when `MASTER_PORT` is not set: one per job,
/// so that jobs sharing a node do not collide.
fn slurm_port(job_id: u64) -> u16 {
    (20000 + job_id % 20000) as u16
}

impl Rendezvous {
    /// Reads the process's environment: `None` for a lone process (no
    /// launcher variables, or a group of one).
    ///
    /// Under Slurm a group is the tasks of an `srun` step
    /// (`SLURM_STEP_NUM_TASKS`, which only `srun` sets; the same as the
    /// job's `SLURM_NTASKS` for a job of one step): a batch script's own
    /// process, outside `srun`, is a lone process whatever the job's task
    /// count, since no other rank would ever join it.
    pub fn from_env() -> Result<Option<Rendezvous>, DistributedError> {
        Rendezvous::from_vars(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) with the variables `var` gives.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Rendezvous>, DistributedError> {
        let timeout = match var("SWALP_DIST_TIMEOUT") {
            Some(v) => Duration::from_secs_f64(positive_seconds("SWALP_DIST_TIMEOUT", &v)?),
            None => Duration::from_secs(300),
        };
        if var("WORLD_SIZE").is_some() || var("RANK").is_some() {
            let world_size = number(&var, "WORLD_SIZE", "a positive whole number")?;
            let rank = number(&var, "RANK", "a whole number below WORLD_SIZE")?;
            if world_size <= 1 {
                return Ok(None);
            }
            let local_rank = match var("LOCAL_RANK") {
                Some(_) => number(&var, "LOCAL_RANK", "a whole number")?,
                None => rank,
            };
            let master_addr = required(&var, "MASTER_ADDR", "the host of rank 0 or of torchrun")?;
            let master_port = port(&var)?;
            check_rank("RANK", rank, world_size)?;
            return Ok(Some(Rendezvous {
                rank,
                world_size,
                local_rank,
                master_addr,
                master_port,
                agent_store: var("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True"),
                timeout,
                launcher: Launcher::Torchrun,
            }));
        }
        if var("SLURM_PROCID").is_some() && var("SLURM_STEP_NUM_TASKS").is_some() {
            let world_size = number(&var, "SLURM_STEP_NUM_TASKS", "a positive whole number")?;
            if world_size <= 1 {
                return Ok(None);
            }
            let rank = number(
                &var,
                "SLURM_PROCID",
                "a whole number below the step's tasks",
            )?;
            check_rank("SLURM_PROCID", rank, world_size)?;
            let local_rank = number(&var, "SLURM_LOCALID", "a whole number")?;
            let master_addr = match var("MASTER_ADDR") {
                Some(a) => a,
                None => {
                    // The step's first node runs task 0.
                    let variable = if var("SLURM_STEP_NODELIST").is_some() {
                        "SLURM_STEP_NODELIST"
                    } else {
                        "SLURM_JOB_NODELIST"
                    };
                    let list = required(&var, variable, "Slurm's node list")?;
                    first_node(&list).ok_or(DistributedError::Environment {
                        variable,
                        value: list,
                        expected: "a node list such as `node[01-04]`",
                    })?
                }
            };
            let master_port = match var("MASTER_PORT") {
                Some(_) => port(&var)?,
                None => slurm_port(number(&var, "SLURM_JOB_ID", "Slurm's job id")? as u64),
            };
            return Ok(Some(Rendezvous {
                rank,
                world_size,
                local_rank,
                master_addr,
                master_port,
                agent_store: false,
                timeout,
                launcher: Launcher::Slurm,
            }));
        }
        Ok(None)
    }

    /// `host:port` of the store.
    pub fn address(&self) -> String {
        format!("{}:{}", self.master_addr, self.master_port)
    }
}

fn required(
    var: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    expected: &'static str,
) -> Result<String, DistributedError> {
    var(variable)
        .filter(|v| !v.trim().is_empty())
        .ok_or(DistributedError::Environment {
            variable,
            value: String::new(),
            expected,
        })
}

fn number(
    var: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    expected: &'static str,
) -> Result<usize, DistributedError> {
    let value = required(var, variable, expected)?;
    value
        .trim()
        .parse()
        .map_err(|_| DistributedError::Environment {
            variable,
            value,
            expected,
        })
}

fn port(var: &impl Fn(&str) -> Option<String>) -> Result<u16, DistributedError> {
    let expected = "a port number, 1 to 65535";
    let value = required(var, "MASTER_PORT", expected)?;
    match value.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(DistributedError::Environment {
            variable: "MASTER_PORT",
            value,
            expected,
        }),
    }
}

fn positive_seconds(variable: &'static str, value: &str) -> Result<f64, DistributedError> {
    match value.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s.is_finite() => Ok(s),
        _ => Err(DistributedError::Environment {
            variable,
            value: value.into(),
            expected: "a positive number of seconds",
        }),
    }
}

fn check_rank(variable: &'static str, rank: usize, world: usize) -> Result<(), DistributedError> {
    if rank < world {
        return Ok(());
    }
    Err(DistributedError::Environment {
        variable,
        value: rank.to_string(),
        expected: "a rank below the world size",
    })
}

/// The first host of a Slurm node list: `a`, `a,b`, `gpu[07-08,12]`,
/// `rack[1-2]-n[3-4]` (the first of each range).
fn first_node(list: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = list.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            ',' => break,
            '[' => {
                let inside: String = chars.by_ref().take_while(|&c| c != ']').collect();
                let first = inside.split([',', '-']).next()?;
                out.push_str(first);
            }
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn torchrun_variables_make_a_rendezvous() {
        let r = Rendezvous::from_vars(vars(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "29500"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(r.rank, 1);
        assert_eq!(r.world_size, 2);
        assert!(r.agent_store);
        assert_eq!(r.address(), "127.0.0.1:29500");
        assert_eq!(r.timeout, Duration::from_secs(300));
    }

    #[test]
    fn a_lone_process_has_no_rendezvous() {
        assert_eq!(Rendezvous::from_vars(vars(&[])).unwrap(), None);
        let one = [("RANK", "0"), ("WORLD_SIZE", "1")];
        assert_eq!(Rendezvous::from_vars(vars(&one)).unwrap(), None);
        let one_task = [("SLURM_PROCID", "0"), ("SLURM_STEP_NUM_TASKS", "1")];
        assert_eq!(Rendezvous::from_vars(vars(&one_task)).unwrap(), None);
        // A batch script's process outside srun, in a job of four tasks.
        let batch = [
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "4"),
            ("SLURM_JOB_NODELIST", "n[1-2]"),
        ];
        assert_eq!(Rendezvous::from_vars(vars(&batch)).unwrap(), None);
    }

    #[test]
    fn bad_variables_are_named() {
        let e = Rendezvous::from_vars(vars(&[("RANK", "0"), ("WORLD_SIZE", "2")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "MASTER_ADDR is not set; it must be the host of rank 0 or of torchrun"
        );
        let e = Rendezvous::from_vars(vars(&[
            ("RANK", "2"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "1"),
        ]))
        .unwrap_err();
        assert!(e.to_string().starts_with("RANK=\"2\""), "{e}");
        let e = Rendezvous::from_vars(vars(&[
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "70000"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("1 to 65535"), "{e}");
        let e = Rendezvous::from_vars(vars(&[("SWALP_DIST_TIMEOUT", "0")])).unwrap_err();
        assert!(e.to_string().contains("positive number of seconds"), "{e}");
    }

    #[test]
    fn slurm_node_lists_give_their_first_host() {
        assert_eq!(first_node("n1").as_deref(), Some("n1"));
        assert_eq!(first_node("a,b").as_deref(), Some("a"));
        assert_eq!(first_node("gpu[07-08,12]").as_deref(), Some("gpu07"));
        assert_eq!(first_node("gpu[12,07-08]").as_deref(), Some("gpu12"));
        assert_eq!(first_node("rack[1-2]-n[3-4]").as_deref(), Some("rack1-n3"));
        assert_eq!(first_node(""), None);
        assert_eq!(slurm_port(4242), 24242);
    }
}
