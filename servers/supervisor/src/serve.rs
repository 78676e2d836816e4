//! The supervisor's loop: exit messages from the kernel and
//! `supervisor::Request`s from domains, one `reply_recv` per message.
//!
//! A request is authorised by its sender's badge before anything else
//! (`serac_supervisor_core::authority`); each refusal is one log line
//! (`supervisor: refused <Request> of <target> from <caller>: <why>`), the
//! first [`LOGGED_DENIALS`] per caller. The wait also ends on events: the
//! kernel's notification that serial input arrived, which the console
//! (`crate::console`) handles between messages.

use core::fmt;

use ilwaco::{ipc, println, sys, time};
use serac_protocol::client::{ServiceError, LABEL_SUPERVISOR};
use serac_protocol::codec::{decode, encode};
use serac_protocol::exit::{DomainExit, ExitReason};
use serac_protocol::header::LABEL_EXIT;
use serac_protocol::layout::MAX_PAYLOAD;
use serac_protocol::supervisor::{
    DomainClass, DomainStat, DomainState, OperatorKeys, Reply, Request, MAX_OPERATOR_KEYS,
};
use serac_protocol::syscall::DomainCounter;
use serac_protocol::{DomainId, Handle, SysError};
use serac_supervisor_core::authority::{self, Asker, Decision, Refusal, Scope};
use serac_supervisor_core::manifest::Class;

use crate::console::Console;
use crate::domains::{Life, Supervisor, LOGGED_DENIALS, MAX_RESTARTS};

/// Consecutive failed `reply_recv`s before the supervisor gives up.
const MAX_IPC_ERRORS: u32 = 3;

/// How a domain prints in a log line: `<name> <index>:<gen>`, or only the
/// id when it is none of the supervisor's instances.
struct Who<'s, 'a>(&'s Supervisor<'a>, DomainId);

impl fmt::Display for Who<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Who(sup, id) = *self;
        if let Some(i) = sup.by_id(id) {
            write!(f, "{} ", sup.name(i))?;
        }
        write!(f, "{}:{}", id.index, id.gen)
    }
}

/// Who asked, in a log line: a domain by its badge, or the console.
struct Asking<'s, 'a>(&'s Supervisor<'a>, Option<u64>);

impl fmt::Display for Asking<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(badge) => Who(self.0, DomainId::from_raw(badge)).fmt(f),
            None => f.write_str("the console"),
        }
    }
}

/// How an exit reason prints.
struct Why<'r>(&'r ExitReason);

impl fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self.0 {
            ExitReason::Halted(code) => write!(f, "halted with code {code}"),
            ExitReason::Fault {
                kind,
                vaddr,
                rip,
                error,
            } => write!(
                f,
                "fault {kind:?} at rip {rip:#x} (address {vaddr:#x}, error {error:#x})"
            ),
            ExitReason::Killed => f.write_str("killed"),
        }
    }
}

/// Seconds between memory tables when serving outside a test.
const MEMORY_EVERY_S: u64 = 30;

/// Serves until a test ends or nothing is left; returns the halt code.
pub fn run(sup: &mut Supervisor<'_>) -> u64 {
    // `test-end-after-ms`: serve until then, then report.
    let after = |ms: u64| {
        let deadline = time::clock().map_or(0, |c| {
            c.deadline_after_ns(time::tsc(), ms.saturating_mul(1_000_000))
        });
        (ms, deadline.max(1))
    };
    let mut end = sup.m.test_end_after_ms.map(after);
    // Set once the test-end domain has ended and `test-linger-ms` runs.
    let mut lingering = false;
    // Outside a test run (`cargo xtask run`) the memory table every
    // `MEMORY_EVERY_S`, what the operator console will show (issue 11).
    let serving = sup.m.test_end.is_none() && end.is_none();
    let mut report = serving.then(|| after(MEMORY_EVERY_S * 1000).1);
    let mut buf = [0u8; MAX_PAYLOAD];
    let mut reply = Handle::NONE;
    let mut errors = 0;
    let mut console = Console::default();
    console.greet();
    loop {
        let base = end.map_or(report.unwrap_or(0), |(_, d)| d);
        let top = console.deadline();
        let deadline = match (base, top) {
            (0, t) | (t, 0) => t,
            (b, t) => b.min(t),
        };
        let got = sys::reply_recv_or_event(reply, deadline, 0);
        reply = Handle::NONE;
        let got = match got {
            Ok(sys::Woken::Message(r)) => Ok(r.to_raw()),
            Ok(sys::Woken::Events(_)) => {
                console.input(sup);
                continue;
            }
            Ok(sys::Woken::Timeout) if top != 0 && time::tsc() >= top => {
                console.tick(sup);
                if base == 0 || time::tsc() < base {
                    continue;
                }
                Err(SysError::WouldBlock)
            }
            Ok(sys::Woken::Timeout) => Err(SysError::WouldBlock),
            Err(e) => Err(e),
        };
        // Whatever comes next may print: end the prompt's line first.
        console.interrupt();
        match got {
            Ok(r) => {
                errors = 0;
                reply = Handle::from_raw(r);
            }
            Err(SysError::WouldBlock) if report.is_some() && end.is_none() => {
                sup.print_memory();
                report = Some(after(MEMORY_EVERY_S * 1000).1);
                continue;
            }
            Err(SysError::WouldBlock) if lingering => {
                println!("supervisor: linger over; ending the run");
                return 0;
            }
            Err(SysError::WouldBlock) if end.is_some() => {
                return timed_end(sup, end.map_or(0, |(ms, _)| ms));
            }
            Err(e) => {
                errors += 1;
                println!("supervisor: reply_recv failed: {e:?}");
                if errors >= MAX_IPC_ERRORS || e == SysError::BadSyscall {
                    println!("supervisor: cannot receive messages; giving up");
                    return crate::EXIT_IPC;
                }
                continue;
            }
        }
        let (label, badge, len) = match ipc::get_message(&mut buf) {
            Ok((h, len)) => (h.label, h.badge, len),
            Err(e) => {
                println!("supervisor: unreadable message: {e:?}");
                answer(&mut reply, &Reply::Err(ServiceError::BadRequest));
                continue;
            }
        };
        let payload = buf.get(..len).unwrap_or(&[]);
        match label {
            LABEL_EXIT => {
                if let Some(code) = on_exit(sup, payload) {
                    match sup.m.test_linger_ms {
                        Some(ms) if code == 0 && !lingering => {
                            println!("supervisor: lingering {ms} ms before ending the run");
                            lingering = true;
                            end = Some(after(ms));
                        }
                        _ if lingering => {}
                        _ => return code,
                    }
                }
                // The kernel expects no answer; if it gave a reply handle, answer empty.
                if !reply.is_none() && ipc::put_message(0, Handle::NONE, &[]).is_err() {
                    reply = Handle::NONE;
                }
            }
            LABEL_SUPERVISOR => {
                let r = match decode::<Request>(payload) {
                    Ok(req) => on_request(sup, Some(badge), req),
                    Err(_) => Reply::Err(ServiceError::BadRequest),
                };
                answer(&mut reply, &r);
            }
            other => {
                println!("supervisor: message with unknown label {other:#x} ignored");
                answer(&mut reply, &Reply::Err(ServiceError::BadRequest));
            }
        }
    }
}

/// Puts `r` in the IPC buffer for the next `reply_recv`; without a reply
/// handle (a `send`) there is nobody to answer.
fn answer(reply: &mut Handle, r: &Reply) {
    if reply.is_none() {
        return;
    }
    let mut out = [0u8; MAX_PAYLOAD];
    let ok = encode(r, &mut out)
        .ok()
        .and_then(|bytes| ipc::put_message(LABEL_SUPERVISOR, Handle::NONE, bytes).ok());
    if ok.is_none() {
        println!("supervisor: could not encode a reply");
        *reply = Handle::NONE;
    }
}

/// Handles a `LABEL_EXIT` message; `Some(code)` ends the supervisor.
///
/// The kernel keeps the dead domain's record until the supervisor acts:
/// a domain marked `restart=yes` that faulted (and has restarts left) is
/// restarted in place, every other one is reaped.
fn on_exit(sup: &mut Supervisor<'_>, payload: &[u8]) -> Option<u64> {
    let ex = match decode::<DomainExit>(payload) {
        Ok(ex) => ex,
        Err(e) => {
            println!(
                "supervisor: malformed exit message ({} bytes, {e:?}) ignored",
                payload.len()
            );
            return None;
        }
    };
    let Some(i) = sup.by_id(ex.domain) else {
        println!(
            "supervisor: exit of unknown domain {}:{} ({}) ignored",
            ex.domain.index,
            ex.domain.gen,
            Why(&ex.reason)
        );
        return None;
    };
    if sup.inst[i].life == Life::Exited {
        // Killed after a failed restart: now it can be reaped.
        sup.reap(i);
        return None;
    }
    let name = sup.name(i);
    println!("supervisor: {name} exited: {}", Why(&ex.reason));
    let d = sup.inst[i].dom();
    let spec = sup.m.domains()[d];
    let is_test_end = sup.m.test_end == Some(d);
    let fault = matches!(ex.reason, ExitReason::Fault { .. });
    let restart = spec.restart && fault && !is_test_end;
    if restart && sup.inst[i].restarts >= MAX_RESTARTS {
        println!("supervisor: {name} restarted {MAX_RESTARTS} times already; left dead");
    }
    if restart && sup.inst[i].restarts < MAX_RESTARTS {
        let old = sup.inst[i].id;
        match sup.restart(i) {
            Ok(()) => {
                let id = sup.inst[i].id;
                println!(
                    "supervisor: restarted {name}: {}:{} -> {}:{} (same slot, generation bumped)",
                    old.index, old.gen, id.index, id.gen
                );
            }
            Err(f) => {
                println!("supervisor: restart failed: {f}");
                sup.reap(i);
            }
        }
    } else {
        sup.reap(i);
    }
    if is_test_end && sup.all_ended(d) {
        sup.print_memory();
        println!("supervisor: test end: {} {}", spec.name, Why(&ex.reason));
        return Some(0);
    }
    if sup.running() == 0 {
        println!("supervisor: every domain has ended");
        return Some(0);
    }
    None
}

/// Serves one request from the sender whose endpoint carries `badge`, or
/// (`None`) from the console.
pub fn on_request(sup: &mut Supervisor<'_>, from: Option<u64>, req: Request) -> Reply {
    let badge = from.unwrap_or(0);
    let caller = from.and_then(|b| sup.caller(b));
    let asker = match from {
        None => Asker::Console,
        Some(_) => Asker::Domain(caller.map(|(_, c)| c)),
    };
    let scope = match authority::decide(asker, &req) {
        Decision::Allow(s) => s,
        Decision::Deny(why) => {
            if should_log(sup, badge, caller.map(|(i, _)| i)) {
                refused(sup, badge, &req, why);
            }
            return Reply::Err(ServiceError::NotPermitted);
        }
    };
    let live = |sup: &Supervisor<'_>, id: DomainId| {
        sup.by_id(id).filter(|&i| sup.inst[i].life != Life::Exited)
    };
    match req {
        Request::List { from_index } => {
            if scope != Scope::All && should_log(sup, badge, caller.map(|(i, _)| i)) {
                println!(
                    "supervisor: limited List from {} to itself: {}",
                    Who(sup, DomainId::from_raw(badge)),
                    Refusal::NotOperator
                );
            }
            let ids = sup
                .inst
                .iter()
                .filter(|x| x.life != Life::Exited)
                .map(|x| x.id);
            Reply::List(authority::list_page(ids, from_index, scope))
        }
        Request::Stat { domain } => match sup.by_id(domain) {
            Some(i) => Reply::Stat(stat(sup, i)),
            None => Reply::Err(ServiceError::NoSuchDomain),
        },
        Request::Kill { domain } => match live(sup, domain) {
            Some(i) => {
                println!(
                    "supervisor: killing {} on request from {}",
                    Who(sup, domain),
                    Asking(sup, from)
                );
                match sup.kill(i) {
                    Ok(()) => Reply::Ok,
                    Err(_) => Reply::Err(ServiceError::NoSuchDomain),
                }
            }
            None => Reply::Err(ServiceError::NoSuchDomain),
        },
        Request::Restart { domain } => match live(sup, domain) {
            Some(i) => {
                // Logged before: the caller may be the target.
                println!(
                    "supervisor: restarting {} on request from {}",
                    Who(sup, domain),
                    Asking(sup, from)
                );
                match sup.restart(i) {
                    Ok(()) => {
                        let id = sup.inst[i].id;
                        println!(
                            "supervisor: restarted {}: {}:{} -> {}:{}",
                            sup.name(i),
                            domain.index,
                            domain.gen,
                            id.index,
                            id.gen
                        );
                        Reply::Restarted(id)
                    }
                    Err(f) => {
                        println!("supervisor: restart failed: {f}");
                        sup.reap(i);
                        Reply::Err(ServiceError::NoResources)
                    }
                }
            }
            None => Reply::Err(ServiceError::NoSuchDomain),
        },
        Request::SwapOut { domain } => match sup.by_id(domain) {
            Some(i) => match sup.swap_out(i) {
                Ok(()) => Reply::Ok,
                Err(e) => Reply::Err(e),
            },
            None => Reply::Err(ServiceError::NoSuchDomain),
        },
        Request::Spawn { .. } => Reply::Err(ServiceError::Unsupported),
        Request::Install { spec, check_only } => {
            if !check_only {
                println!(
                    "supervisor: installing service {} on request from {}",
                    spec.name.as_str(),
                    Asking(sup, from)
                );
            }
            match sup.install(&spec, check_only) {
                Ok(()) => Reply::Ok,
                Err(e) => Reply::Err(e),
            }
        }
        Request::StartService { name, count } => match sup.start_service(name.as_str(), count) {
            Ok(s) => Reply::Started(s),
            Err(e) => Reply::Err(e),
        },
        Request::OperatorKeys => {
            let mut k = OperatorKeys {
                keys: [[0; 32]; MAX_OPERATOR_KEYS],
                count: 0,
            };
            for (dst, src) in k.keys.iter_mut().zip(&sup.m.operator_keys) {
                *dst = *src;
                k.count += 1;
            }
            Reply::Keys(k)
        }
    }
}

/// Counts a refusal (or a limited `List`) of the caller with `badge`
/// (instance `i`, or none) and says whether to log it: the first
/// [`LOGGED_DENIALS`] of each caller are, and of unknown callers together.
fn should_log(sup: &mut Supervisor<'_>, badge: u64, i: Option<usize>) -> bool {
    let n = match i.and_then(|i| sup.inst.get_mut(i)) {
        Some(x) => {
            x.denied = x.denied.saturating_add(1);
            u32::from(x.denied)
        }
        None => {
            sup.denied_unknown = sup.denied_unknown.saturating_add(1);
            sup.denied_unknown
        }
    };
    let max = u32::from(LOGGED_DENIALS);
    if n == max + 1 {
        match i {
            Some(_) => println!(
                "supervisor: further refusals of {} are only counted",
                Who(sup, DomainId::from_raw(badge))
            ),
            None => println!("supervisor: further refusals of unknown callers are only counted"),
        }
    }
    n <= max
}

/// The log line of a refused request.
fn refused(sup: &Supervisor<'_>, badge: u64, req: &Request, why: Refusal) {
    let from = Who(sup, DomainId::from_raw(badge));
    let verb = authority::verb(req);
    match authority::target(req) {
        Some(d) => println!(
            "supervisor: refused {verb} of {} from {from}: {why}",
            Who(sup, d)
        ),
        None => println!("supervisor: refused {verb} from {from}: {why}"),
    }
}

fn stat(sup: &Supervisor<'_>, i: usize) -> DomainStat {
    let x = sup.inst[i];
    let class = match sup.m.domains()[x.dom()].class {
        Class::Server => DomainClass::Server,
        Class::Guest => DomainClass::Guest,
    };
    let dead = x.life == Life::Exited;
    let counter = |c| if dead { 0 } else { sup.counter(i, c) };
    let mem = if dead { None } else { sup.memory(i) };
    DomainStat {
        id: x.id,
        class,
        state: if dead {
            DomainState::Dead
        } else if mem.is_some_and(|m| m.swapped_out) {
            DomainState::SwappedOut
        } else {
            DomainState::Runnable
        },
        frames_resident: u32::try_from(sup.pages(i))
            .unwrap_or(u32::MAX)
            .saturating_add(mem.map_or(0, |m| m.resident)),
        pages_swapped: mem.map_or(0, |m| m.swapped),
        cpu_ticks: counter(DomainCounter::CpuTicks),
        events_raised: counter(DomainCounter::EventsRaised),
        upcalls_delivered: counter(DomainCounter::UpcallsDelivered),
        faults: counter(DomainCounter::Faults),
        restarts: u32::from(x.restarts),
    }
}

/// `test-end-after-ms`: after serving messages (exits included) for `ms`,
/// reports and ends with `supervisor: test end: <k> domain(s) running
/// after <ms> ms`, where `k` counts every instance started (pagers and
/// other servers included) that has not exited.
fn timed_end(sup: &mut Supervisor<'_>, ms: u64) -> u64 {
    let mut cpu = 0u64;
    let mut faults = 0u64;
    let mut restarts = 0u64;
    for i in 0..sup.inst.len() {
        cpu = cpu.saturating_add(sup.counter(i, DomainCounter::CpuTicks));
        faults = faults.saturating_add(sup.counter(i, DomainCounter::Faults));
        restarts += u64::from(sup.inst[i].restarts);
    }
    let denied = sup
        .inst
        .iter()
        .map(|x| u32::from(x.denied))
        .fold(sup.denied_unknown, u32::saturating_add);
    println!(
        "supervisor: stats: {} instance(s), cpu {cpu} ticks, {faults} pager fault(s), {restarts} restart(s), {denied} request(s) refused or limited",
        sup.inst.len()
    );
    sup.print_memory();
    println!(
        "supervisor: test end: {} domain(s) running after {ms} ms",
        sup.running()
    );
    0
}
