//! `sreg push FILE.sif REF [--recipe F] [--log F] [--meta key=value ...] [--tag T ...]`.
//!
//! Checks the SIF locally (structure, architecture), hashes it in one pass,
//! opens an upload session (the registry checks the token, the reference and
//! the right to push before any byte is sent), sends the build log if any,
//! then streams the image. Prints the image's reference and URL on stdout.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::HumanBytes;
use sreg_api::Reference;
use sreg_api::v1::UploadRequest;
use sreg_sif::Sif;

use crate::build::record::{self, BuildRecord};
use crate::buildmeta;
use crate::cli::PushArgs;
use crate::registry::{self, Target};

pub fn run(args: &PushArgs) -> Result<()> {
    let r = Reference::parse(&args.reference)
        .with_context(|| format!("{:?} is not an image reference", args.reference))?;
    let target = registry::target()?;
    check_host(&r, &target)?;
    if target.token.is_none() {
        bail!("pushing needs a token: {}", registry::login_hint(&target));
    }

    let sif = Sif::open(&args.file)
        .with_context(|| format!("{} is not a readable SIF file", args.file.display()))?;
    if let Some(problem) = sif.problems().first() {
        bail!(
            "{} is not a sound SIF file ({problem}): see `sreg inspect {}`",
            args.file.display(),
            args.file.display()
        );
    }
    let arch = sif
        .primary_partition()
        .map(|_| sif.primary_arch().name().to_string());
    drop(sif);

    let len = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    let record = if args.no_build_record {
        None
    } else {
        build_record(&args.file, len)?
    };
    let mut build = match &record {
        Some(r) => r.record.to_metadata(),
        None => buildmeta::from_env(&|k| std::env::var(k).ok()),
    };
    if let Some(recipe) = &args.recipe {
        build.recipe = Some(registry::read_text(recipe, "recipe")?);
        build.recipe_path = Some(recipe.display().to_string());
    }
    buildmeta::apply(&mut build, &args.meta)?;
    let log = args
        .log
        .clone()
        .or_else(|| record.as_ref().and_then(|r| r.log.clone()));
    if let Some(log) = &log {
        std::fs::metadata(log).with_context(|| format!("cannot read the log {}", log.display()))?;
    }

    let client = registry::client(&target)?;
    let started = Instant::now();
    let image = registry::block_on(async {
        let request = UploadRequest {
            reference: format!("{}:{}", r.path(), r.tag),
            tags: args.tag.clone(),
            size: len,
            // From the build record, checked by the registry before it
            // publishes; else hashed while sent and confirmed after.
            sha256: record.as_ref().map(|r| r.record.image.sha256.clone()),
            arch: arch.clone(),
            private: args.private.then_some(true),
            build: Some(build),
        };
        let session = client
            .start_upload(&request)
            .await
            .map_err(|e| registry::explain(e, &target))?;
        if let Some(log) = &log {
            client
                .upload_log(&session, log)
                .await
                .map_err(|e| registry::explain(e, &target))
                .with_context(|| format!("cannot upload the log {}", log.display()))?;
        }
        let bar = registry::progress_bar(len, "uploading");
        let image = client
            .upload_image(&session, &args.file, bar.as_ref().map(|(_, p)| p.clone()))
            .await
            .map_err(|e| registry::explain(e, &target))
            .map_err(|e| match &record {
                Some(r) => e.context(format!(
                    "{} no longer matches its build record {}: rebuild it, or push with --no-build-record",
                    args.file.display(),
                    r.path.display()
                )),
                None => e,
            });
        if let Some((b, _)) = bar {
            b.finish_and_clear();
        }
        image
    })??;

    println!("{}", image.reference);
    println!(
        "{}",
        client.url(&format!("api/v1/images/{}", image.reference))
    );
    eprintln!(
        "pushed {} ({}, {}) in {:.1}s: {}",
        args.file.display(),
        HumanBytes(image.size.max(0) as u64),
        if image.arch.is_empty() {
            "no architecture"
        } else {
            &image.arch
        },
        started.elapsed().as_secs_f64(),
        image.hash
    );
    Ok(())
}

/// A build record found beside the image, with its log when the log is
/// the one the record describes.
struct FoundRecord {
    path: std::path::PathBuf,
    record: BuildRecord,
    log: Option<std::path::PathBuf>,
}

/// The record `sreg build` wrote beside `image`, if it describes a file of
/// this size (a different size means the image was replaced since).
fn build_record(image: &Path, len: u64) -> Result<Option<FoundRecord>> {
    let (path, _) = record::paths_for(image);
    let Some(record) = BuildRecord::read(&path)? else {
        return Ok(None);
    };
    if record.image.size != len {
        eprintln!(
            "sreg: warning: ignoring {}: it describes a {} byte image, {} has {len}",
            path.display(),
            record.image.size,
            image.display()
        );
        return Ok(None);
    }
    let log = record.log.as_ref().and_then(|l| {
        let log = path.with_file_name(&l.file);
        let same = crate::build::hash_file(&log)
            .is_ok_and(|(size, sha)| size == l.size && sha == l.sha256);
        if !same {
            eprintln!(
                "sreg: warning: {} is not the log of this build; not sending it",
                log.display()
            );
        }
        same.then_some(log)
    });
    eprintln!("sreg: sending the build record {}", path.display());
    Ok(Some(FoundRecord { path, record, log }))
}

/// A `library://HOST/...` reference must name the registry in use.
pub fn check_host(r: &Reference, target: &Target) -> Result<()> {
    let Some(host) = &r.host else {
        return Ok(());
    };
    let url = url::Url::parse(&target.url)
        .with_context(|| format!("the registry URL {:?} is not a URL", target.url))?;
    let ours = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    };
    if !host.eq_ignore_ascii_case(&ours) {
        bail!(
            "the reference names the registry {host}, but the one in use is {}: set SREG_REGISTRY or run `sreg login https://{host}`",
            target.url
        );
    }
    Ok(())
}
