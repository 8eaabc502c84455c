//! A build job for unit tests of the OCI and registry sources: a recipe
//! in a temp folder, a work folder and a log, no backend.

use std::path::{Path, PathBuf};

use clap::{Args, FromArgMatches};
use tokio_util::sync::CancellationToken;

use crate::build::job::Job;
use crate::build::log::BuildLog;
use crate::cli::BuildArgs;

pub struct TestJob {
    args: BuildArgs,
    dir: PathBuf,
    log: BuildLog,
    pub cancel: CancellationToken,
}

impl TestJob {
    /// `sreg build DIR/recipe.def EXTRA...` with `recipe` as the recipe.
    pub fn new(dir: &Path, recipe: &str, extra: &[&str]) -> TestJob {
        let path = dir.join("recipe.def");
        std::fs::write(&path, recipe).unwrap();
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let cmd = BuildArgs::augment_args(clap::Command::new("build"));
        let mut argv = vec!["build".to_string(), path.display().to_string()];
        argv.extend(extra.iter().map(|s| s.to_string()));
        let matches = cmd.try_get_matches_from(argv).unwrap();
        TestJob {
            args: BuildArgs::from_arg_matches(&matches).unwrap(),
            dir: dir.to_path_buf(),
            log: BuildLog::create(&dir.join("build.log"), false).unwrap(),
            cancel: CancellationToken::new(),
        }
    }

    pub fn job(&self) -> Job<'_> {
        let text = std::fs::read_to_string(&self.args.recipe).unwrap();
        Job {
            recipe_path: self.args.recipe.clone(),
            definition: sreg_recipe::Definition::parse(&text).unwrap(),
            recipe_text: text,
            build_args: Default::default(),
            context_dir: self.dir.clone(),
            partial: self.dir.join("out.sif.partial"),
            work_dir: self.dir.join("work"),
            notest: self.args.notest,
            nohttps: self.args.nohttps,
            isolation: self.args.isolation,
            cancel: self.cancel.clone(),
            log: self.log.clone(),
            args: &self.args,
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}
