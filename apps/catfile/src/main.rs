//! Reads files of a mounted image. Handles: 1 = endpoint to the disk
//! server. It mounts image `www`, prints the first line of `index.html`
//! and its length, and shows that `missing.html` is a typed `NotFound`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use ilwaco::protocol::Handle;
use ilwaco::{println, FsError, Image};

ilwaco::entry!(main);

const DISK: Handle = Handle::new(1, 1);
/// Longest first line printed (the console line is bounded too).
const LINE_MAX: usize = 120;

fn check() -> Result<(), &'static str> {
    let img = match Image::mount_named(DISK, "www") {
        Ok(img) => img,
        Err(e) => {
            println!("catfile: mount www: {e:?}");
            return Err("cannot mount www");
        }
    };
    println!("catfile: www: {} entries", img.entries().count());
    let mut page = Vec::new();
    let read = img.open("index.html").and_then(|mut f| {
        f.read_to_end(&mut page)?;
        Ok(f.len())
    });
    match read {
        Ok(len) => println!("catfile: index.html: {len} bytes"),
        Err(e) => {
            println!("catfile: index.html: {e:?}");
            return Err("cannot read index.html");
        }
    }
    let line = page.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = line.get(..LINE_MAX).unwrap_or(line);
    match core::str::from_utf8(line) {
        Ok(s) => println!("catfile: index.html: first line: {s}"),
        Err(_) => println!("catfile: index.html: first line: {line:?}"),
    }
    match img.open("missing.html") {
        Err(e @ FsError::NotFound) => {
            println!("catfile: missing.html: {e:?}");
            Ok(())
        }
        Err(e) => {
            println!("catfile: missing.html: {e:?}");
            Err("missing.html failed with the wrong error")
        }
        Ok(_) => Err("missing.html opened"),
    }
}

fn main() -> i32 {
    match check() {
        Ok(()) => {
            println!("TEST catfile ... ok");
            0
        }
        Err(why) => {
            println!("TEST catfile ... FAILED: {why}");
            1
        }
    }
}
