//! `sreg pull REF [-o OUT]`: streams the image into a temporary file beside
//! OUT, checks its sha256 and size against the registry's, and renames it
//! into place; a failed or corrupt download leaves no OUT.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use indicatif::HumanBytes;
use sreg_api::Reference;

use crate::cli::PullArgs;
use crate::commands::push::check_host;
use crate::registry;

pub fn run(args: &PullArgs) -> Result<()> {
    let r = Reference::parse(&args.reference)
        .with_context(|| format!("{:?} is not an image reference", args.reference))?;
    let target = registry::target()?;
    check_host(&r, &target)?;
    let out = args.output.clone().unwrap_or_else(|| {
        let tag = r.tag.replace("sha256.", "sha256-");
        PathBuf::from(format!("{}_{tag}.sif", r.container))
    });
    if out.is_dir() {
        bail!("{} is a folder: give a file name with -o", out.display());
    }
    if out.exists() && !args.force {
        bail!(
            "{} exists already: remove it, pick another name with -o, or pass --force",
            out.display()
        );
    }
    let client = registry::client(&target)?;
    let done = registry::block_on(async {
        let image = client
            .image(&r, args.arch.as_deref())
            .await
            .map_err(|e| registry::explain(e, &target))?;
        let bar = registry::progress_bar(image.size.max(0) as u64, "pulling");
        let done = client
            .download(
                &r,
                args.arch.as_deref(),
                &out,
                bar.as_ref().map(|(_, p)| p.clone()),
            )
            .await
            .map_err(|e| registry::explain(e, &target));
        if let Some((b, _)) = bar {
            b.finish_and_clear();
        }
        done
    })??;
    println!("{}", done.path.display());
    eprintln!(
        "pulled {} ({}, {}), sha256 {} verified",
        done.image.reference,
        HumanBytes(done.size),
        done.image.arch,
        done.sha256
    );
    Ok(())
}
