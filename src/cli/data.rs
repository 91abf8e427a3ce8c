//! `divqat data`: the dataset catalog.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use datasets::{catalog, DataLocations};

use super::output::print_json;

#[derive(Subcommand)]
pub enum DataCommand {
    /// List every dataset with its shape, classes, split sizes and whether it is installed.
    #[command(
        after_help = "Examples:\n  divqat data list\n  divqat data list --json --data-dir ~/cifar-10-batches-bin"
    )]
    List(ListArgs),
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub data: DataDirArgs,
    /// Print JSON (an array of objects) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Where to find datasets the user brings (CIFAR binary batches).
#[derive(Args, Clone)]
pub struct DataDirArgs {
    /// Directory holding CIFAR-10/100 binary batches (data_batch_*.bin / train.bin ...).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArgs {
    pub fn locations(&self) -> DataLocations {
        DataLocations::default_locations().with_cifar_dir(self.data_dir.clone())
    }
}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    let DataCommand::List(args) = cmd;
    let rows = catalog(&args.data.locations());
    if args.json {
        return print_json(&rows);
    }
    println!(
        "{:<20} {:>8} {:>7} {:>6} {:>6}  {:<9}  location",
        "dataset", "shape", "classes", "train", "test", "installed"
    );
    for r in &rows {
        let shape = format!("{}x{}x{}", r.shape[0], r.shape[1], r.shape[2]);
        let installed = if r.installed { "yes" } else { "no" };
        println!(
            "{:<20} {:>8} {:>7} {:>6} {:>6}  {:<9}  {}",
            r.name, shape, r.classes, r.train, r.test, installed, r.location
        );
    }
    Ok(())
}
