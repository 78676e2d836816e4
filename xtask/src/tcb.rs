//! `tcb`: audits the trusted computing base.
//!
//! Counts the kernel's code lines (no blanks, comments or `#[cfg(test)]`
//! items), its `unsafe` and whether each block says why it is sound, the
//! unsafe outside the kernel and whether it stays in the modules allowed to
//! hold it, the syscalls, the crates linked into the kernel and the domains
//! the boot manifest makes privileged. Fails when an unsafe block is
//! undocumented, when unsafe escapes its modules, or when the kernel outgrows
//! the budget in `tcb-budget.toml`.
//!
//! The scanner is a small lexer, not a parser: it knows comments (nested
//! block comments too), string, raw-string, byte and char literals and
//! lifetimes, which is enough to count lines and find the `unsafe` keyword
//! in code only.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serac_boot::host;

use crate::artifacts;
use crate::util::{cargo, Failure, Result, KERNEL_TARGET};

/// The budget file, at the repository root.
pub const BUDGET_FILE: &str = "tcb-budget.toml";
/// Where the syscall table lives.
const SYSCALL_FILE: &str = "protocol/src/syscall.rs";

// ---------------------------------------------------------------------------
// Lexing: which lines are code, which are comments, what the code says.

/// One source file, split into lines and classified.
#[derive(Debug, Clone, Default)]
pub struct Scanned {
    /// The original lines.
    pub raw: Vec<String>,
    /// Per line: the code with comments removed and the contents of string
    /// and char literals blanked (the quotes stay).
    pub code: Vec<String>,
    /// Per line: something other than whitespace outside comments
    /// (literal text counts: a multi-line string is code).
    pub has_code: Vec<bool>,
    /// Per line: a comment and no code.
    pub comment_only: Vec<bool>,
    /// Per line: part of a `#[cfg(test)]` item (or the file is `#![cfg(test)]`).
    pub test: Vec<bool>,
}

impl Scanned {
    /// Lines of code outside test items.
    pub fn loc(&self) -> usize {
        (0..self.raw.len())
            .filter(|&i| self.has_code[i] && !self.test[i])
            .count()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    LineComment,
    Block(u32),
    Str,
    RawStr(usize),
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Classifies every line of `src`.
pub fn scan(src: &str) -> Scanned {
    let chars: Vec<char> = src.chars().collect();
    let mut s = Scanned::default();
    let mut code = String::new();
    let (mut has_code, mut has_comment) = (false, false);
    let mut state = State::Code;
    let mut i = 0;
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    let mut end_line = |code: &mut String, has_code: &mut bool, has_comment: &mut bool| {
        s.code.push(std::mem::take(code));
        s.has_code.push(*has_code);
        s.comment_only.push(*has_comment && !*has_code);
        (*has_code, *has_comment) = (false, false);
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            end_line(&mut code, &mut has_code, &mut has_comment);
            if state == State::LineComment {
                state = State::Code;
            }
            i += 1;
            continue;
        }
        match state {
            State::LineComment => {
                has_comment = true;
                i += 1;
            }
            State::Block(depth) => {
                has_comment = true;
                if c == '/' && at(i + 1) == '*' {
                    state = State::Block(depth + 1);
                    i += 2;
                } else if c == '*' && at(i + 1) == '/' {
                    state = if depth == 1 {
                        State::Code
                    } else {
                        State::Block(depth - 1)
                    };
                    i += 2;
                } else {
                    i += 1;
                }
            }
            State::Str => {
                if c == '\\' {
                    has_code = true;
                    code.push(' ');
                    // The escaped character; a newline is handled above.
                    if at(i + 1) != '\n' {
                        code.push(' ');
                        i += 1;
                    }
                    i += 1;
                } else if c == '"' {
                    code.push('"');
                    state = State::Code;
                    i += 1;
                } else {
                    has_code |= !c.is_whitespace();
                    code.push(' ');
                    i += 1;
                }
            }
            State::RawStr(hashes) => {
                if c == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    code.push('"');
                    state = State::Code;
                    i += 1 + hashes;
                } else {
                    has_code |= !c.is_whitespace();
                    code.push(' ');
                    i += 1;
                }
            }
            State::Code => {
                if c == '/' && at(i + 1) == '/' {
                    state = State::LineComment;
                    has_comment = true;
                    i += 2;
                } else if c == '/' && at(i + 1) == '*' {
                    state = State::Block(1);
                    has_comment = true;
                    i += 2;
                } else if c == '"' {
                    has_code = true;
                    code.push('"');
                    state = State::Str;
                    i += 1;
                } else if c == '\'' {
                    has_code = true;
                    i = char_or_lifetime(&chars, i, &mut code);
                } else if is_ident(c) {
                    has_code = true;
                    let start = i;
                    while i < chars.len() && is_ident(chars[i]) {
                        i += 1;
                    }
                    let word: String = chars[start..i].iter().collect();
                    code.push_str(&word);
                    // Raw strings: r"..", r#".."#, br"..", cr"..".
                    if matches!(word.as_str(), "r" | "br" | "cr") {
                        let mut k = i;
                        while at(k) == '#' {
                            k += 1;
                        }
                        if at(k) == '"' {
                            code.push('"');
                            state = State::RawStr(k - i);
                            i = k + 1;
                        }
                    }
                    // b"..", c".." are ordinary strings and b'x' a char: the
                    // next round sees the quote.
                } else {
                    has_code |= !c.is_whitespace();
                    code.push(c);
                    i += 1;
                }
            }
        }
    }
    if !src.is_empty() && !src.ends_with('\n') {
        end_line(&mut code, &mut has_code, &mut has_comment);
    }
    s.raw = src.lines().map(str::to_owned).collect();
    // `lines()` and the lexer agree except for a trailing "\r"; pad defensively.
    let n = s.code.len().max(s.raw.len());
    s.raw.resize(n, String::new());
    s.code.resize(n, String::new());
    s.has_code.resize(n, false);
    s.comment_only.resize(n, false);
    s.test = test_lines(&s.code);
    s
}

/// At a `'` in code: a char literal (blanked, returns the index after it) or
/// a lifetime / label (the quote is kept).
fn char_or_lifetime(chars: &[char], i: usize, code: &mut String) -> usize {
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    let close = if at(i + 1) == '\\' {
        // '\n', '\'', '\u{1F600}': the closing quote is within a few chars.
        (i + 3..(i + 13).min(chars.len())).find(|&k| chars[k] == '\'')
    } else if at(i + 2) == '\'' && at(i + 1) != '\n' {
        Some(i + 2)
    } else {
        None
    };
    match close {
        Some(end) => {
            code.push('\'');
            code.push_str(&" ".repeat(end - i - 1));
            code.push('\'');
            end + 1
        }
        None => {
            code.push('\'');
            i + 1
        }
    }
}

/// A token of blanked code: an identifier (or number) or one punctuation char.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    line: usize,
}

fn tokens(code: &[String]) -> Vec<Token> {
    let mut out = Vec::new();
    for (line, l) in code.iter().enumerate() {
        let mut word = String::new();
        for c in l.chars() {
            if is_ident(c) {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                out.push(Token {
                    text: std::mem::take(&mut word),
                    line,
                });
            }
            if !c.is_whitespace() {
                out.push(Token {
                    text: c.to_string(),
                    line,
                });
            }
        }
        if !word.is_empty() {
            out.push(Token { text: word, line });
        }
    }
    out
}

fn texts_match(toks: &[Token], at: usize, pattern: &[&str]) -> bool {
    pattern
        .iter()
        .enumerate()
        .all(|(k, p)| toks.get(at + k).is_some_and(|t| t.text == *p))
}

/// Marks the lines of every `#[cfg(test)]` item: from the attribute to the
/// `}` matching the item's first `{`, or to its `;` (`mod tests;`).
fn test_lines(code: &[String]) -> Vec<bool> {
    let mut test = vec![false; code.len()];
    let toks = tokens(code);
    if (0..toks.len())
        .any(|i| texts_match(&toks, i, &["#", "!", "[", "cfg", "(", "test", ")", "]"]))
    {
        return vec![true; code.len()];
    }
    let attr = ["#", "[", "cfg", "(", "test", ")", "]"];
    let mut i = 0;
    while i < toks.len() {
        if !texts_match(&toks, i, &attr) {
            i += 1;
            continue;
        }
        let first = toks[i].line;
        let mut j = i + attr.len();
        let mut nest = 0i64; // ( and [
        let mut item = false; // an item keyword, not a field or variant
        let mut last = toks.last().map_or(first, |t| t.line);
        while j < toks.len() {
            match toks[j].text.as_str() {
                "(" | "[" => nest += 1,
                ")" | "]" => nest -= 1,
                "fn" | "mod" | "impl" | "struct" | "enum" | "trait" | "use" | "extern"
                | "const" | "static" | "type" | "macro_rules" | "let" => item = true,
                // `mod tests;`, `extern crate std;`.
                ";" if nest <= 0 => {
                    last = toks[j].line;
                    break;
                }
                // A field or variant: `x: u8,`.
                "," if nest <= 0 && !item => {
                    last = toks[j].line;
                    break;
                }
                // The last field or variant: the item ends before the `}`.
                "}" if nest <= 0 && !item => {
                    last = toks[j - 1].line;
                    break;
                }
                "{" if nest <= 0 => {
                    let mut depth = 0i64;
                    while j < toks.len() {
                        match toks[j].text.as_str() {
                            "{" => depth += 1,
                            "}" => depth -= 1,
                            _ => {}
                        }
                        if depth == 0 {
                            break;
                        }
                        j += 1;
                    }
                    last = toks.get(j).map_or(last, |t| t.line);
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        for t in test.iter_mut().take(last + 1).skip(first) {
            *t = true;
        }
        i = j + 1;
    }
    test
}

// ---------------------------------------------------------------------------
// Unsafe.

/// What an `unsafe` keyword introduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeKind {
    /// `unsafe { .. }`
    Block,
    /// `unsafe impl`
    Impl,
    /// `unsafe fn`, `unsafe extern` (block or fn), `unsafe trait`.
    Decl,
}

/// One `unsafe` in code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsafeSite {
    /// What it is.
    pub kind: UnsafeKind,
    /// 1-based line.
    pub line: usize,
    /// For blocks and impls: a `// SAFETY:` comment precedes it.
    pub documented: bool,
}

/// Every `unsafe` outside comments, literals and test items. `unsafe(..)`
/// attributes (`#[unsafe(no_mangle)]`) are not counted.
pub fn unsafe_sites(s: &Scanned) -> Vec<UnsafeSite> {
    let toks = tokens(&s.code);
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if t.text != "unsafe" || s.test[t.line] {
            continue;
        }
        // r#unsafe is an identifier.
        if i >= 2 && toks[i - 1].text == "#" && toks[i - 2].text == "r" {
            continue;
        }
        let next = toks.get(i + 1).map_or("", |t| t.text.as_str());
        let kind = match next {
            "{" => UnsafeKind::Block,
            "impl" => UnsafeKind::Impl,
            "fn" | "extern" | "trait" => UnsafeKind::Decl,
            _ => continue,
        };
        let documented = kind == UnsafeKind::Decl || has_safety_comment(s, t.line);
        out.push(UnsafeSite {
            kind,
            line: t.line + 1,
            documented,
        });
    }
    out
}

fn is_attribute_line(code: &str) -> bool {
    let t = code.trim();
    (t.starts_with("#[") || t.starts_with("#![")) && t.ends_with(']')
}

/// A `// SAFETY:` comment in the comment lines directly above `line`
/// (attributes may sit in between), or above the start of the statement
/// that `line` continues (`let x =\n    unsafe { .. }`).
fn has_safety_comment(s: &Scanned, line: usize) -> bool {
    let mut line = line;
    for _ in 0..32 {
        let mut k = line;
        while k > 0 {
            k -= 1;
            if s.comment_only[k] {
                if s.raw[k].contains("SAFETY:") {
                    return true;
                }
            } else if !(s.has_code[k] && is_attribute_line(&s.code[k])) {
                break;
            }
        }
        // Is the line above part of the same statement?
        if line == 0 || !s.has_code[line - 1] || s.comment_only[line - 1] {
            return false;
        }
        let prev = s.code[line - 1].trim_end();
        if prev.is_empty() || is_attribute_line(prev) || prev.ends_with([';', '{', '}', ',']) {
            return false;
        }
        line -= 1;
    }
    false
}

// ---------------------------------------------------------------------------
// Syscalls.

/// The variant names of `pub enum Syscall` (lines `Name = N,`).
pub fn syscall_names(src: &str) -> Vec<String> {
    let s = scan(src);
    let mut names = Vec::new();
    let mut inside = false;
    for l in &s.code {
        let t = l.trim();
        if !inside {
            inside = t
                .strip_prefix("pub enum Syscall")
                .is_some_and(|rest| rest.trim_start().starts_with('{'));
            continue;
        }
        if t.starts_with('}') {
            break;
        }
        let Some((name, value)) = t.split_once('=') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim().trim_end_matches(',').trim());
        let ident =
            name.chars().next().is_some_and(char::is_uppercase) && name.chars().all(is_ident);
        let number = !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_hexdigit() || "xXoObB_".contains(c));
        if ident && number {
            names.push(name.to_owned());
        }
    }
    names
}

// ---------------------------------------------------------------------------
// Dependencies.

/// A crate linked into the kernel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crate {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// The crates of the kernel's dependency graph, from `cargo tree --prefix depth`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deps {
    /// Registry (or git) crates linked into the kernel.
    pub linked: Vec<Crate>,
    /// Path crates of this workspace linked into the kernel (the kernel too).
    pub workspace: Vec<Crate>,
    /// Procedural macros (and what only they use): run at build time, not linked.
    pub proc_macros: Vec<Crate>,
}

/// Parses `cargo tree -e normal --prefix depth` output.
pub fn parse_tree(text: &str) -> Deps {
    let mut d = Deps::default();
    let mut macro_depth: Option<usize> = None;
    for line in text.lines() {
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        let Ok(depth) = line[..digits].parse::<usize>() else {
            continue;
        };
        let rest = &line[digits..];
        let mut words = rest.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        let krate = Crate {
            name: name.to_owned(),
            version: version.trim_start_matches('v').to_owned(),
        };
        let notes: Vec<&str> = words.collect();
        let proc_macro = notes.contains(&"(proc-macro)");
        if macro_depth.is_some_and(|m| depth <= m) {
            macro_depth = None;
        }
        let list = if proc_macro || macro_depth.is_some() {
            if proc_macro && macro_depth.is_none() {
                macro_depth = Some(depth);
            }
            &mut d.proc_macros
        } else if notes.iter().any(|n| {
            n.starts_with('(') && !n.contains("://") && *n != "(*)" && *n != "(proc-macro)"
        }) {
            &mut d.workspace
        } else {
            &mut d.linked
        };
        list.push(krate);
    }
    for l in [&mut d.linked, &mut d.workspace, &mut d.proc_macros] {
        l.sort();
        l.dedup();
    }
    // A crate both linked and used by a macro is linked.
    let linked = d.linked.clone();
    d.proc_macros.retain(|c| !linked.contains(c));
    d
}

fn kernel_deps() -> Result<Deps> {
    let out = host::output(cargo().args([
        "tree",
        "-p",
        "serac-kernel",
        "--target",
        KERNEL_TARGET,
        "-e",
        "normal",
        "--prefix",
        "depth",
    ]))?;
    if !out.status.success() {
        return Err(Failure(format!(
            "`cargo tree -p serac-kernel` failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(parse_tree(&String::from_utf8_lossy(&out.stdout)))
}

// ---------------------------------------------------------------------------
// The audit.

/// Where an `unsafe` may appear outside the kernel: files or directories
/// named `sys` or `hal` (ilwaco's `sys`, drivers' `hal`).
pub fn allowed_unsafe_module(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let (file, dirs) = parts.split_last().unwrap_or((&"", &[]));
    matches!(*file, "sys.rs" | "hal.rs") || dirs.iter().any(|d| matches!(*d, "sys" | "hal"))
}

/// The audit's findings.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Kernel code lines per file (relative path).
    pub loc_by_file: Vec<(String, usize)>,
    /// Kernel code lines.
    pub kernel_loc: usize,
    /// Of which in `microkernel/src/arch`.
    pub loc_arch: usize,
    /// Of which in `microkernel/core/src` (serac-kcore).
    pub loc_core: usize,
    /// The rest: `microkernel/src` outside arch, and build.rs.
    pub loc_other: usize,
    /// `asm!` / `global_asm!` invocations in the kernel.
    pub asm_blocks: usize,
    /// Kernel unsafe: blocks, impls, declarations.
    pub unsafe_blocks: usize,
    /// `unsafe impl`s.
    pub unsafe_impls: usize,
    /// `unsafe fn` / `unsafe extern` / `unsafe trait`.
    pub unsafe_fns: usize,
    /// Kernel blocks and impls without a SAFETY comment: "file:line".
    pub undocumented_at: Vec<String>,
    /// Every unsafe outside the kernel: "file:line".
    pub user_unsafe_at: Vec<String>,
    /// `unsafe {` blocks outside the kernel.
    pub user_unsafe_blocks: usize,
    /// Unsafe outside the kernel and outside `sys`/`hal` modules.
    pub outside_allowed_at: Vec<String>,
    /// Unsafe blocks outside the kernel without a SAFETY comment.
    pub user_undocumented_at: Vec<String>,
    /// Syscall names, in declaration order.
    pub syscalls: Vec<String>,
    /// The kernel's crates.
    pub deps: Deps,
    /// Privileged domains from the boot manifest (none until it grants handles).
    pub privileged_domains: Vec<String>,
    /// What was found of the boot manifest.
    pub manifest_note: String,
    /// The kernel_loc budget.
    pub budget: usize,
}

impl Report {
    /// All kernel `unsafe` keywords that count.
    pub fn unsafe_total(&self) -> usize {
        self.unsafe_blocks + self.unsafe_impls + self.unsafe_fns
    }

    /// The kernel fits its budget.
    pub fn within_budget(&self) -> bool {
        self.kernel_loc <= self.budget
    }

    /// Why the audit fails; empty if it passes.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if !self.undocumented_at.is_empty() {
            f.push(format!(
                "{} kernel unsafe block(s)/impl(s) without a `// SAFETY:` comment: {}",
                self.undocumented_at.len(),
                self.undocumented_at.join(", ")
            ));
        }
        if !self.outside_allowed_at.is_empty() {
            f.push(format!(
                "{} unsafe outside the kernel and outside `sys`/`hal` modules: {}",
                self.outside_allowed_at.len(),
                self.outside_allowed_at.join(", ")
            ));
        }
        if !self.within_budget() {
            f.push(format!(
                "the kernel has {} lines of code, over the budget of {} in {BUDGET_FILE}",
                self.kernel_loc, self.budget
            ));
        }
        f
    }

    /// One line for `cargo xtask test`.
    pub fn headline(&self) -> String {
        format!(
            "kernel_loc {}/{}, unsafe blocks {}, undocumented {}, unsafe outside sys/hal {}",
            self.kernel_loc,
            self.budget,
            self.unsafe_blocks,
            self.undocumented_at.len(),
            self.outside_allowed_at.len()
        )
    }
}

/// `.rs` files under `dir`, sorted, relative to `root` with `/` separators.
fn rust_files(root: &Path, dir: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![root.join(dir)];
    while let Some(d) = stack.pop() {
        if !d.is_dir() {
            continue;
        }
        let entries =
            fs::read_dir(&d).map_err(|e| Failure(format!("read {}: {e}", d.display())))?;
        for e in entries {
            let p = e
                .map_err(|e| Failure(format!("read {}: {e}", d.display())))?
                .path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(relative(root, &p));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn relative(root: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(root).unwrap_or(p);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// `<dir>/*/src` for every subdirectory of `dir` (servers, apps).
fn crate_srcs(root: &Path, dir: &str) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(root.join(dir))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("src").is_dir())
        .map(|p| format!("{}/src", relative(root, &p)))
        .collect();
    out.sort();
    out
}

fn read(root: &Path, rel: &str) -> Result<String> {
    let p = root.join(rel);
    fs::read_to_string(&p).map_err(|e| Failure(format!("read {}: {e}", p.display())))
}

/// Reads `kernel_loc = N` from the budget file's text.
pub fn parse_budget(text: &str) -> Option<usize> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "kernel_loc").then(|| v.trim().replace('_', "").parse().ok())?
        })
}

fn asm_count(s: &Scanned) -> usize {
    let toks = tokens(&s.code);
    (0..toks.len())
        .filter(|&i| {
            !s.test[toks[i].line]
                && (texts_match(&toks, i, &["asm", "!"])
                    || texts_match(&toks, i, &["global_asm", "!"])
                    || texts_match(&toks, i, &["naked_asm", "!"]))
        })
        .count()
}

/// Privileged domains of the default boot manifest (the one xtask packs,
/// decoded and checked with the supervisor's own rules). A domain is privileged when
/// its handles give it device, I/O-port or DMA power; the manifest's links
/// are endpoints and notifications, which give none, so only a kind that
/// does will ever put a domain on the list. Pagers and operators are listed
/// in the note: pagers own memory, which is power over their clients, and
/// operators (`operator = true`) may kill and restart any domain, but neither
/// has power over devices.
fn manifest(_root: &Path) -> Result<(Vec<String>, String)> {
    use serac_supervisor_core::manifest::Manifest;
    let bytes = artifacts::manifest(&artifacts::default_config())?;
    let m = Manifest::decode(&bytes)
        .map_err(|e| Failure(format!("the default boot manifest does not decode: {e}")))?;
    // Driver domains hold a PCI function and, with no IOMMU, can aim its
    // DMA anywhere: they are part of the trusted base.
    let privileged: Vec<String> = m
        .domains()
        .iter()
        .filter_map(|d| {
            d.device.map(|sel| {
                format!("{}: PCI {sel:?} (config space except BARs/ROM, its memory BARs uncached, DMA anywhere: no IOMMU)", d.name)
            })
        })
        .collect();
    let pagers: Vec<&str> = (0..m.domains().len())
        .filter(|&d| m.is_pager(d))
        .filter_map(|d| m.domains().get(d).map(|s| s.name))
        .collect();
    let operators: Vec<&str> = m
        .domains()
        .iter()
        .filter(|d| d.operator)
        .map(|d| d.name)
        .collect();
    let list = |v: &[&str]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    let note = format!(
        "default manifest: {} domain(s); driver domains, trusted with DMA: {}; \
         pagers, trusted with their clients' memory: {}; \
         operators, trusted to see every domain and swap it out: {}",
        m.domains().len(),
        if privileged.is_empty() {
            "none".to_owned()
        } else {
            privileged.join("; ")
        },
        list(&pagers),
        list(&operators)
    );
    Ok((privileged, note))
}

/// Runs the audit over the repository at `root`.
pub fn audit(root: &Path) -> Result<Report> {
    let mut r = Report::default();

    let budget_text = read(root, BUDGET_FILE)
        .map_err(|e| Failure(format!("{e} (the kernel's line budget lives there)")))?;
    r.budget = parse_budget(&budget_text)
        .ok_or_else(|| Failure(format!("{BUDGET_FILE} has no `kernel_loc = N` line")))?;

    let mut kernel = rust_files(root, "microkernel/src")?;
    kernel.extend(rust_files(root, "microkernel/core/src")?);
    if root.join("microkernel/build.rs").is_file() {
        kernel.push("microkernel/build.rs".to_owned());
    }
    for rel in &kernel {
        let s = scan(&read(root, rel)?);
        let loc = s.loc();
        r.kernel_loc += loc;
        if rel.starts_with("microkernel/src/arch/") {
            r.loc_arch += loc;
        } else if rel.starts_with("microkernel/core/src/") {
            r.loc_core += loc;
        } else {
            r.loc_other += loc;
        }
        r.loc_by_file.push((rel.clone(), loc));
        r.asm_blocks += asm_count(&s);
        for u in unsafe_sites(&s) {
            match u.kind {
                UnsafeKind::Block => r.unsafe_blocks += 1,
                UnsafeKind::Impl => r.unsafe_impls += 1,
                UnsafeKind::Decl => r.unsafe_fns += 1,
            }
            if !u.documented {
                r.undocumented_at.push(format!("{rel}:{}", u.line));
            }
        }
    }

    let mut user_dirs = vec!["ilwaco/src".to_owned()];
    user_dirs.extend(crate_srcs(root, "servers"));
    user_dirs.extend(crate_srcs(root, "apps"));
    for dir in &user_dirs {
        for rel in rust_files(root, dir)? {
            let s = scan(&read(root, &rel)?);
            let in_crate = rel.strip_prefix(dir.as_str()).unwrap_or(&rel);
            for u in unsafe_sites(&s) {
                let at = format!("{rel}:{}", u.line);
                if u.kind == UnsafeKind::Block {
                    r.user_unsafe_blocks += 1;
                }
                if !u.documented {
                    r.user_undocumented_at.push(at.clone());
                }
                if !allowed_unsafe_module(in_crate) {
                    r.outside_allowed_at.push(at.clone());
                }
                r.user_unsafe_at.push(at);
            }
        }
    }

    r.syscalls = syscall_names(&read(root, SYSCALL_FILE)?);
    r.deps = kernel_deps()?;
    (r.privileged_domains, r.manifest_note) = manifest(root)?;
    Ok(r)
}

// ---------------------------------------------------------------------------
// Output.

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_strs(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| json_str(s)).collect();
    format!("[{}]", items.join(", "))
}

fn json_crates(v: &[Crate]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|c| {
            format!(
                "{{\"name\": {}, \"version\": {}}}",
                json_str(&c.name),
                json_str(&c.version)
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// The report as one JSON object.
pub fn to_json(r: &Report) -> String {
    let by_file: Vec<String> = r
        .loc_by_file
        .iter()
        .map(|(f, n)| format!("{}: {n}", json_str(f)))
        .collect();
    let fields: Vec<(&str, String)> = vec![
        ("kernel_loc", r.kernel_loc.to_string()),
        ("kernel_loc_arch", r.loc_arch.to_string()),
        ("kernel_loc_core", r.loc_core.to_string()),
        ("kernel_loc_other", r.loc_other.to_string()),
        ("kernel_loc_by_file", format!("{{{}}}", by_file.join(", "))),
        ("budget", r.budget.to_string()),
        ("within_budget", r.within_budget().to_string()),
        ("unsafe_total", r.unsafe_total().to_string()),
        ("unsafe_blocks", r.unsafe_blocks.to_string()),
        ("unsafe_impls", r.unsafe_impls.to_string()),
        ("unsafe_fns", r.unsafe_fns.to_string()),
        ("asm_blocks", r.asm_blocks.to_string()),
        ("undocumented_unsafe", r.undocumented_at.len().to_string()),
        ("undocumented_unsafe_at", json_strs(&r.undocumented_at)),
        ("user_unsafe_blocks", r.user_unsafe_blocks.to_string()),
        ("user_unsafe_total", r.user_unsafe_at.len().to_string()),
        ("user_unsafe_at", json_strs(&r.user_unsafe_at)),
        (
            "user_undocumented_unsafe_at",
            json_strs(&r.user_undocumented_at),
        ),
        (
            "unsafe_outside_allowed_modules",
            r.outside_allowed_at.len().to_string(),
        ),
        (
            "unsafe_outside_allowed_modules_at",
            json_strs(&r.outside_allowed_at),
        ),
        ("syscalls", r.syscalls.len().to_string()),
        ("syscall_names", json_strs(&r.syscalls)),
        ("kernel_deps", json_crates(&r.deps.linked)),
        ("kernel_workspace_crates", json_crates(&r.deps.workspace)),
        ("kernel_proc_macros", json_crates(&r.deps.proc_macros)),
        ("privileged_domains", json_strs(&r.privileged_domains)),
        ("manifest_note", json_str(&r.manifest_note)),
        ("ok", r.failures().is_empty().to_string()),
    ];
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("  {}: {v}", json_str(k)))
        .collect();
    format!("{{\n{}\n}}\n", body.join(",\n"))
}

fn crate_list(v: &[Crate]) -> String {
    if v.is_empty() {
        return "(none)".to_owned();
    }
    v.iter()
        .map(|c| format!("{} {}", c.name, c.version))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human report.
pub fn to_text(r: &Report) -> String {
    let mut o = String::new();
    let yes_no = |b: bool| if b { "yes" } else { "NO" };
    let _ = writeln!(o, "Serac trusted computing base\n");
    let rows: Vec<(&str, String)> = vec![
        (
            "kernel lines of code",
            format!(
                "{} (budget {}, within: {})",
                r.kernel_loc,
                r.budget,
                yes_no(r.within_budget())
            ),
        ),
        ("  arch (microkernel/src/arch)", r.loc_arch.to_string()),
        ("  core (serac-kcore)", r.loc_core.to_string()),
        ("  other (main, kernel, build.rs)", r.loc_other.to_string()),
        ("kernel unsafe blocks", r.unsafe_blocks.to_string()),
        ("kernel unsafe impls", r.unsafe_impls.to_string()),
        ("kernel unsafe fn/extern", r.unsafe_fns.to_string()),
        ("kernel asm!/global_asm!", r.asm_blocks.to_string()),
        (
            "undocumented unsafe (no SAFETY:)",
            r.undocumented_at.len().to_string(),
        ),
        (
            "unsafe outside the kernel",
            format!(
                "{} ({} blocks)",
                r.user_unsafe_at.len(),
                r.user_unsafe_blocks
            ),
        ),
        (
            "  outside sys/hal modules",
            r.outside_allowed_at.len().to_string(),
        ),
        ("syscalls", r.syscalls.len().to_string()),
        ("kernel crates (linked)", r.deps.linked.len().to_string()),
        ("privileged domains", r.privileged_domains.len().to_string()),
    ];
    for (k, v) in &rows {
        let _ = writeln!(o, "  {k:<36} {v}");
    }

    let _ = writeln!(o, "\nLines of code per kernel file:");
    for (f, n) in &r.loc_by_file {
        let _ = writeln!(o, "  {n:>6}  {f}");
    }

    let list = |o: &mut String, title: &str, v: &[String]| {
        if v.is_empty() {
            let _ = writeln!(o, "\n{title}: none");
        } else {
            let _ = writeln!(o, "\n{title}:");
            for s in v {
                let _ = writeln!(o, "  {s}");
            }
        }
    };
    list(
        &mut o,
        "Kernel unsafe without a `// SAFETY:` comment",
        &r.undocumented_at,
    );
    list(
        &mut o,
        "Unsafe outside the kernel and outside sys/hal modules",
        &r.outside_allowed_at,
    );
    if !r.user_undocumented_at.is_empty() {
        list(
            &mut o,
            "Unsafe outside the kernel without a `// SAFETY:` comment (not a failure here; clippy checks it)",
            &r.user_undocumented_at,
        );
    }

    let _ = writeln!(
        o,
        "\nCrates linked into the kernel ({}): {}",
        r.deps.linked.len(),
        crate_list(&r.deps.linked)
    );
    let _ = writeln!(
        o,
        "Workspace crates in the kernel: {}",
        crate_list(&r.deps.workspace)
    );
    let _ = writeln!(
        o,
        "Build-time only (proc macros and their deps): {}",
        crate_list(&r.deps.proc_macros)
    );
    let _ = writeln!(
        o,
        "\nSyscalls ({}): {}",
        r.syscalls.len(),
        r.syscalls.join(", ")
    );
    let _ = writeln!(o, "\nPrivileged domains: {}", r.manifest_note);
    for d in &r.privileged_domains {
        let _ = writeln!(o, "  {d}");
    }
    o
}

/// `cargo xtask tcb [--json]`. The current directory is the root.
pub fn tcb(json: bool) -> Result<ExitCode> {
    let r = audit(&PathBuf::from("."))?;
    if json {
        print!("{}", to_json(&r));
    } else {
        print!("{}", to_text(&r));
    }
    let failures = r.failures();
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for f in &failures {
        eprintln!("error: tcb: {f}");
    }
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn counts_code_not_comments_or_blanks() {
        let src = "\
//! crate doc
/// item doc
fn a() {
    // a comment

    let x = 1; // trailing
    /* block
       still block */
    let y = /* inline */ 2;
}
/* one-line block */
";
        let s = scan(src);
        assert_eq!(s.loc(), 4);
        assert!(s.comment_only[0] && s.comment_only[1] && s.comment_only[6]);
        assert!(!s.has_code[4]);
    }

    #[test]
    fn nested_block_comments() {
        let s = scan("/* a /* b */ still */\nfn f() {}\n");
        assert_eq!(s.loc(), 1);
        assert!(s.comment_only[0]);
    }

    #[test]
    fn skips_cfg_test_items() {
        let src = "\
fn a() {}
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    fn t() { let s = \"}}}\"; let c = '}'; }
    // }
}
fn b() {}
#[cfg(test)]
extern crate std;
#[cfg(test)]
fn helper(x: [u8; 4]) -> u8 {
    x[0]
}
fn c() {}
";
        let s = scan(src);
        assert_eq!(s.loc(), 3);
        assert!(!s.test[0] && s.test[1] && s.test[6] && !s.test[7] && !s.test[14]);
    }

    #[test]
    fn braces_in_strings_and_chars() {
        let src = "\
#[cfg(test)]
mod t {
    const A: &str = \"{ { {\";
    const B: &str = r#\"} \" }\"#;
    const C: char = '{';
    const D: u8 = b'}';
    fn f<'a>(x: &'a str) -> &'a str { x }
    const E: char = '\\'';
}
fn kept() {}
";
        let s = scan(src);
        assert_eq!(s.loc(), 1);
        assert!(s.test[8] && !s.test[9]);
    }

    #[test]
    fn multi_line_string_is_code() {
        let s = scan("global_asm!(\n    \"\n    mov rax, 1\n\n    \",\n);\n");
        // The blank line inside the string is not code.
        assert_eq!(s.loc(), 5);
    }

    #[test]
    fn whole_file_cfg_test() {
        let s = scan("#![cfg(test)]\nfn f() {}\n");
        assert_eq!(s.loc(), 0);
    }

    fn sites(src: &str) -> Vec<(UnsafeKind, usize, bool)> {
        unsafe_sites(&scan(src))
            .into_iter()
            .map(|u| (u.kind, u.line, u.documented))
            .collect()
    }

    #[test]
    fn documented_and_undocumented_blocks() {
        let src = "\
fn f() {
    // SAFETY: reason,
    // over two lines.
    unsafe { a() };
    unsafe { b() };

    // SAFETY: a blank line separates this.

    unsafe { c() };
    // Not a safety comment.
    unsafe { d() };
}
";
        assert_eq!(
            sites(src),
            [
                (UnsafeKind::Block, 4, true),
                (UnsafeKind::Block, 5, false),
                (UnsafeKind::Block, 9, false),
                (UnsafeKind::Block, 11, false),
            ]
        );
    }

    #[test]
    fn let_unsafe_and_continued_statements() {
        let src = "\
fn f() {
    // SAFETY: the value is valid.
    let x = unsafe { a() };
    // SAFETY: covers the statement.
    let y: &'static mut [u64] =
        unsafe { b() };
    let z = foo();
    let w =
        unsafe { c() };
    match v {
        // SAFETY: arm one.
        Some(p) => unsafe { d(p) },
        None => unsafe { e() },
    }
}
";
        assert_eq!(
            sites(src),
            [
                (UnsafeKind::Block, 3, true),
                (UnsafeKind::Block, 6, true),
                (UnsafeKind::Block, 9, false),
                (UnsafeKind::Block, 12, true),
                (UnsafeKind::Block, 13, false),
            ]
        );
    }

    #[test]
    fn impls_fns_and_what_is_not_unsafe() {
        let src = "\
// SAFETY: frames are unique.
unsafe impl Alloc for Frames {}
unsafe impl Send for X {}
pub unsafe fn raw() {}
unsafe extern \"C\" {
    fn entry();
}
#[unsafe(no_mangle)]
static S: u8 = 0;
#![deny(unsafe_code)]
// unsafe { in a comment }
const T: &str = \"unsafe { in a string }\";
#[cfg(test)]
mod tests {
    fn t() { unsafe { x() } }
}
";
        assert_eq!(
            sites(src),
            [
                (UnsafeKind::Impl, 2, true),
                (UnsafeKind::Impl, 3, false),
                (UnsafeKind::Decl, 4, true),
                (UnsafeKind::Decl, 5, true),
            ]
        );
    }

    #[test]
    fn safety_above_attribute() {
        let src = "// SAFETY: fine.\n#[allow(clippy::x)]\nunsafe impl Send for X {}\n";
        assert_eq!(sites(src), [(UnsafeKind::Impl, 3, true)]);
    }

    #[test]
    fn counts_syscalls() {
        let src = "\
/// doc
#[repr(u32)]
pub enum Syscall {
    /// `a`: does A = 1,
    DebugWrite = 1,
    Call = 2,
    // Retired = 3,
    ReplyRecv = 0x4,
}

pub enum DomainOp {
    Create = 1,
}
";
        assert_eq!(syscall_names(src), ["DebugWrite", "Call", "ReplyRecv"]);
    }

    #[test]
    fn allowed_modules() {
        assert!(allowed_unsafe_module("/sys.rs"));
        assert!(allowed_unsafe_module("/hal/mmio.rs"));
        assert!(allowed_unsafe_module("/drivers/hal.rs"));
        assert!(!allowed_unsafe_module("/main.rs"));
        assert!(!allowed_unsafe_module("/sysfs.rs"));
    }

    #[test]
    fn budget_file() {
        assert_eq!(
            parse_budget("# why\nkernel_loc = 6_000 # note\n"),
            Some(6000)
        );
        assert_eq!(parse_budget("other = 1\n"), None);
    }

    #[test]
    fn cargo_tree_output() {
        let text = "\
0serac-kernel v0.1.0 (/r/microkernel)
1acpi v5.2.0
2bitflags v2.13.2
1serac-protocol v0.1.0 (/r/protocol)
2thiserror v2.0.21
3thiserror-impl v2.0.21 (proc-macro)
4proc-macro2 v1.0.107
5unicode-ident v1.0.27
4quote v1.0.47
2serde v1.0.229
3serde_core v1.0.229
1acpi v5.2.0 (*)
";
        let d = parse_tree(text);
        let names = |v: &[Crate]| v.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&d.linked),
            ["acpi", "bitflags", "serde", "serde_core", "thiserror"]
        );
        assert_eq!(names(&d.workspace), ["serac-kernel", "serac-protocol"]);
        assert_eq!(
            names(&d.proc_macros),
            ["proc-macro2", "quote", "thiserror-impl", "unicode-ident"]
        );
        assert_eq!(d.linked[0].version, "5.2.0");
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}
