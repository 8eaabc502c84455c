//! What Slurm says about a job: `scontrol show job -o ID` while the
//! controller remembers it (MinJobAge, 300 s by default), `sacct` after.

use std::collections::BTreeMap;

/// States after which a job will not run again.
const TERMINAL: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "REVOKED",
];

/// One look at a job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobState {
    /// `PENDING`, `RUNNING`, `COMPLETING`, `COMPLETED`, `FAILED`...
    pub state: String,
    /// Slurm's `EXIT:SIGNAL`, such as `3:0` or `0:15`.
    pub exit_code: Option<String>,
    /// Why it waits or ended (`Priority`, `NonZeroExitCode`...).
    pub reason: Option<String>,
    /// The node running the batch script.
    pub node: Option<String>,
    pub partition: Option<String>,
}

impl JobState {
    pub fn is_terminal(&self) -> bool {
        TERMINAL.contains(&self.state.as_str())
    }

    /// Ended well: COMPLETED with exit code 0.
    pub fn succeeded(&self) -> bool {
        self.state == "COMPLETED" && self.exit_code.as_deref().is_none_or(|c| c == "0:0")
    }

    /// `FAILED, exit code 3:0, NonZeroExitCode, on vm` for messages.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.state.clone()];
        // Slurm shows 0:0 before the job has ended.
        if let Some(c) = self.exit_code.as_ref().filter(|_| self.is_terminal()) {
            parts.push(format!("exit code {c}"));
        }
        if let Some(r) = &self.reason {
            parts.push(r.clone());
        }
        if let Some(n) = &self.node {
            parts.push(format!("on {n}"));
        }
        parts.join(", ")
    }
}

/// Parses one line of `scontrol show job -o`: `Key=Value` fields separated
/// by spaces (a value with spaces runs on until the next `Key=`).
pub fn parse_scontrol(line: &str) -> Option<JobState> {
    let mut fields: BTreeMap<&str, String> = BTreeMap::new();
    let mut last: Option<&str> = None;
    for word in line.split_whitespace() {
        match word.split_once('=') {
            Some((key, value))
                if !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/:_".contains(c)) =>
            {
                fields.insert(key, value.to_string());
                last = Some(key);
            }
            _ => {
                if let Some(v) = last.and_then(|k| fields.get_mut(k)) {
                    v.push(' ');
                    v.push_str(word);
                }
            }
        }
    }
    let known = |v: Option<&String>| {
        v.filter(|v| !v.is_empty() && *v != "(null)" && *v != "None")
            .cloned()
    };
    Some(JobState {
        state: fields.get("JobState")?.clone(),
        exit_code: known(fields.get("ExitCode")),
        reason: known(fields.get("Reason")),
        node: known(fields.get("BatchHost")).or_else(|| known(fields.get("NodeList"))),
        partition: known(fields.get("Partition")),
    })
}

/// The `sacct` options whose output [`parse_sacct`] reads.
pub const SACCT_ARGS: &[&str] = &[
    "--allocations",
    "--noheader",
    "--parsable2",
    "--format=State,ExitCode,NodeList,Partition",
];

/// Parses `sacct` output (see [`SACCT_ARGS`]): `CANCELLED by 0|0:15|vm|debug`.
pub fn parse_sacct(text: &str) -> Option<JobState> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let mut cols = line.split('|').map(str::trim);
    let state = cols.next()?.split_whitespace().next()?.to_string();
    let mut known = || {
        cols.next()
            .filter(|v| !v.is_empty() && *v != "None assigned")
            .map(str::to_string)
    };
    Some(JobState {
        state,
        exit_code: known(),
        node: known(),
        partition: known(),
        reason: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // As printed by Slurm 22.05.8 (shortened).
    const RUNNING: &str = "JobId=1 JobName=sreg-build-x UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759 JobState=RUNNING Reason=None Dependency=(null) ExitCode=0:0 RunTime=00:00:00 TimeLimit=UNLIMITED Partition=debug AllocNode:Sid=localhost:20250 ReqNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 WorkDir=/tmp/a b StdOut=/tmp/1.out Power= ";
    const FAILED: &str = "JobId=1 JobName=wrap JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 Partition=debug NodeList=vm BatchHost=vm";
    const PENDING: &str = "JobId=7 JobName=x JobState=PENDING Reason=Priority ExitCode=0:0 Partition=debug NodeList=(null)";

    #[test]
    fn scontrol_lines_give_state_exit_code_and_node() {
        let running = parse_scontrol(RUNNING).unwrap();
        assert_eq!(running.state, "RUNNING");
        assert!(!running.is_terminal());
        assert_eq!(running.node.as_deref(), Some("vm"));
        assert_eq!(running.partition.as_deref(), Some("debug"));
        assert_eq!(running.reason, None);

        let failed = parse_scontrol(FAILED).unwrap();
        assert!(failed.is_terminal() && !failed.succeeded());
        assert_eq!(
            failed.describe(),
            "FAILED, exit code 3:0, NonZeroExitCode, on vm"
        );

        let pending = parse_scontrol(PENDING).unwrap();
        assert_eq!(pending.node, None);
        assert_eq!(pending.reason.as_deref(), Some("Priority"));
        assert_eq!(pending.describe(), "PENDING, Priority");
        assert_eq!(
            parse_scontrol("slurm_load_jobs error: Invalid job id specified"),
            None
        );
    }

    #[test]
    fn completed_with_a_non_zero_exit_code_is_not_success() {
        let mut s = parse_scontrol(FAILED).unwrap();
        s.state = "COMPLETED".into();
        assert!(!s.succeeded());
        s.exit_code = Some("0:0".into());
        assert!(s.succeeded());
    }

    #[test]
    fn sacct_lines_give_state_exit_code_and_node() {
        let s = parse_sacct("CANCELLED by 0|0:15|vm|debug\n").unwrap();
        assert_eq!(s.state, "CANCELLED");
        assert!(s.is_terminal());
        assert_eq!(s.exit_code.as_deref(), Some("0:15"));
        assert_eq!(s.node.as_deref(), Some("vm"));
        let p = parse_sacct("PENDING|0:0|None assigned|debug").unwrap();
        assert_eq!(p.node, None);
        assert_eq!(parse_sacct(""), None);
    }
}
