//! `sreg search WORD [--json]`.

use anyhow::Result;

use crate::cli::SearchArgs;
use crate::registry;

pub fn run(args: &SearchArgs) -> Result<()> {
    let target = registry::target()?;
    let client = registry::client(&target)?;
    let results = registry::block_on(client.search(&args.word))?
        .map_err(|e| registry::explain(e, &target))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    if results.collections.is_empty() && results.containers.is_empty() {
        println!("Nothing matches {:?}.", args.word);
        return Ok(());
    }
    if !results.collections.is_empty() {
        println!("{:<40} {:>10}  PRIVATE", "COLLECTION", "CONTAINERS");
        for c in &results.collections {
            println!(
                "{:<40} {:>10}  {}",
                format!("{}/{}", c.entity, c.name),
                c.containers,
                if c.private { "yes" } else { "no" }
            );
        }
        println!();
    }
    if !results.containers.is_empty() {
        println!(
            "{:<50} {:>9} {:>6}  TAGS",
            "CONTAINER", "DOWNLOADS", "STARS"
        );
        for k in &results.containers {
            println!(
                "{:<50} {:>9} {:>6}  {}",
                format!("{}/{}/{}", k.entity, k.collection, k.name),
                k.downloads,
                k.stars,
                k.tags.join(",")
            );
        }
    }
    Ok(())
}
