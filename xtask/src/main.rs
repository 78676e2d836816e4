//! `cargo xtask`: the one entry point for building, imaging, running,
//! testing and debugging Serac. `cargo xtask --help` lists everything.
//!
//! Every external program is started through `serac_boot::host`, so a
//! missing one is reported by name with the package that provides it, and
//! prerequisites are checked (and installed where that is safe) first.
#![forbid(unsafe_code)]

mod artifacts;
mod bench;
mod bench_disk;
mod bench_net;
mod bench_swap;
mod bench_web;
mod cli;
mod disk;
mod prereq;
mod push;
mod run;
mod swap_plot;
mod swap_sim;
mod tcb;
mod test;
mod util;

use std::process::ExitCode;

use cli::{Args, Command};
use util::{root, Failure, Result};

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("error: {msg}\n(run `cargo xtask --help` for usage)");
            return ExitCode::from(2);
        }
    };
    // Paths on the command line are from where xtask was started.
    let cwd = std::env::current_dir().unwrap_or_else(|_| root());
    // Every relative path (target/, the rustup toolchain file) is from the root.
    if let Err(e) = std::env::set_current_dir(root()) {
        eprintln!(
            "error: cannot enter the repository root {}: {e}",
            root().display()
        );
        return ExitCode::FAILURE;
    }
    match dispatch(args, &cwd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: Args, cwd: &std::path::Path) -> Result<ExitCode> {
    match args.command {
        Command::Help(text) => {
            print!("{text}");
            if text == cli::RUN_HELP {
                let names = serac_config::names().map_err(Failure)?;
                println!("\nConfigurations (configs/*.toml):\n  {}", names.join(" "));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Build => {
            prereq::ensure(prereq::Needs {
                kernel: true,
                ..Default::default()
            })?;
            artifacts::build()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Image => {
            prereq::ensure(prereq::Needs {
                kernel: true,
                iso: true,
                ..Default::default()
            })?;
            let built = artifacts::build()?;
            let iso = artifacts::user_iso_path();
            println!("xtask: writing {} with grub-mkrescue", iso.display());
            artifacts::iso(&built, "", &iso)?;
            println!(
                "xtask: wrote {} ({}); it boots under BIOS and UEFI.\n\
                 To write it to a USB stick (ALL DATA ON THE STICK IS LOST; check the device\n\
                 name with `lsblk` first, /dev/sdX must be the stick, not a disk you need):\n\
                 \n    sudo dd if={} of=/dev/sdX bs=4M conv=fsync status=progress\n",
                iso.display(),
                util::size_of(&iso),
                iso.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(opts) => run::run(&opts),
        Command::Gdb(opts) => run::gdb(&opts),
        Command::Test(opts) => test::test(&opts),
        Command::Tcb(json) => tcb::tcb(json),
        Command::Bench(what, json) => bench::bench(&what, json),
        Command::BenchWeb(o) => bench_web::web(&o),
        Command::Disk(cmd) => disk::disk(&cmd, cwd),
        Command::SwapSim(opts) => swap_sim::swap_sim(&opts, cwd),
        Command::Push(opts) => push::push(&opts),
    }
}
