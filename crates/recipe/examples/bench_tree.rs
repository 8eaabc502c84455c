//! Generates N recipes in a temporary tree, then times discovery + parsing.
//!
//! `cargo run --release -p sreg-recipe --example bench_tree -- 10000`

use std::fs;
use std::time::Instant;

use sreg_recipe::{DiscoverOptions, discover};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map_or(Ok(10_000), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("bench");
    for i in 0..n {
        // 100 recipes per directory, a mix of the usual file names.
        let d = root.join(format!("group{}/tool{}", i / 1000, i / 100));
        fs::create_dir_all(&d)?;
        let name = match i % 4 {
            0 => format!("Singularity.v{i}"),
            1 => format!("Apptainer.{i}"),
            2 => format!("r{i}.def"),
            _ => format!("Singularity.{i}.gpu"),
        };
        let text = format!(
            "Bootstrap: docker\nFrom: ubuntu:{i}\nStage: s\n\n%arguments\n    V={i}\n\n%files\n    src/{i}.txt /opt/{i}.txt\n\n%post -c /bin/bash\n    apt-get update\n    apt-get install -y build-essential {{{{ V }}}}\n    make -j4 install\n\n%environment\n    export LC_ALL=C\n\n%labels\n    Maintainer someone\n    Version {i}\n\n%help\n    Tool number {i}.\n\n%runscript\n    exec tool \"$@\"\n"
        );
        fs::write(d.join(name), text)?;
        // Files that must not be taken for recipes.
        if i % 10 == 0 {
            fs::write(d.join(format!("Singularity.{i}.md")), "docs")?;
        }
    }

    let options = DiscoverOptions::default();
    // One warm-up walk so the page cache does not decide the result.
    discover(&root, &options)?;
    let runs = 5;
    let start = Instant::now();
    let mut found = 0;
    for _ in 0..runs {
        let d = discover(&root, &options)?;
        assert!(d.recipes.iter().all(|r| r.error.is_none()));
        found = d.recipes.len();
    }
    let per_run = start.elapsed().as_secs_f64() / f64::from(runs);
    println!(
        "{found} recipes discovered and parsed in {:.1} ms: {:.0} recipes/s",
        per_run * 1000.0,
        found as f64 / per_run
    );
    Ok(())
}
