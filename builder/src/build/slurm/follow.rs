//! Follows a Slurm job's output file into the build log while the job runs
//! (on a shared filesystem, the compute node writes it).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::super::log::BuildLog;

pub struct OutputTail {
    path: PathBuf,
    offset: u64,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
}

impl OutputTail {
    pub fn new(path: PathBuf) -> OutputTail {
        OutputTail {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// Copies the whole lines written since the last call into the log. A
    /// file that does not exist yet (job pending) is not an error.
    pub fn poll(&mut self, log: &BuildLog) {
        let Ok(mut file) = File::open(&self.path) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut new = Vec::new();
        let Ok(n) = file.read_to_end(&mut new) else {
            return;
        };
        self.offset += n as u64;
        self.partial.extend_from_slice(&new);
        if let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') {
            let rest = self.partial.split_off(end + 1);
            log.bytes(&self.partial);
            self.partial = rest;
        }
    }

    /// Reads to the end and writes an unfinished last line too.
    pub fn finish(&mut self, log: &BuildLog) {
        self.poll(log);
        if !self.partial.is_empty() {
            self.partial.push(b'\n');
            log.bytes(&self.partial);
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn whole_lines_are_copied_as_they_come() {
        let dir = tempfile::tempdir().unwrap();
        let log = BuildLog::create(&dir.path().join("b.log"), false).unwrap();
        let out = dir.path().join("slurm.out");
        let mut tail = OutputTail::new(out.clone());
        tail.poll(&log); // not there yet
        let mut f = File::create(&out).unwrap();
        f.write_all(b"one\ntw").unwrap();
        tail.poll(&log);
        assert_eq!(std::fs::read_to_string(log.path()).unwrap(), "one\n");
        f.write_all(b"o\nthree").unwrap();
        tail.poll(&log);
        assert_eq!(std::fs::read_to_string(log.path()).unwrap(), "one\ntwo\n");
        tail.finish(&log);
        assert_eq!(
            std::fs::read_to_string(log.path()).unwrap(),
            "one\ntwo\nthree\n"
        );
    }
}
