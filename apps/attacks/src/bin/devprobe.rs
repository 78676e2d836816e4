//! The test domain of `device_grant`: a driver domain the manifest gave the
//! virtio-blk function (`device=virtio-blk`, its handle 1). It checks what
//! the handle allows (the function's identity, configuration reads and the
//! writes the kernel permits, its memory BAR mapped and read) and what it
//! refuses (BAR and ROM writes, misaligned and out-of-range accesses, I/O
//! and absent BARs, mapping a BAR twice).
#![no_std]
#![no_main]

use ilwaco::protocol::syscall::{DeviceOp, PciInfo};
use ilwaco::protocol::Handle;
use ilwaco::{println, sys, SysError};

ilwaco::entry!(main);

const DEV: Handle = Handle::new(1, 1);
/// Where the common-configuration BAR goes (far from the image and heap).
const BAR_VA: u64 = 0x0000_5000_0000_0000;

fn dev(op: DeviceOp, a: u64, b: u64) -> Result<u64, SysError> {
    sys::device(DEV, op, a, b)
}

fn refused(
    r: Result<u64, SysError>,
    want: SysError,
    what: &'static str,
) -> Result<(), &'static str> {
    match r {
        Err(e) if e == want => Ok(()),
        _ => Err(what),
    }
}

fn config() -> Result<(), &'static str> {
    let info = PciInfo::from_raw(dev(DeviceOp::Info, 0, 0).map_err(|_| "Info failed")?);
    if info.vendor != 0x1af4 || info.device != 0x1042 || info.class != 1 {
        return Err("Info names another function");
    }
    let id = dev(DeviceOp::ConfigRead, 0, 4).map_err(|_| "ConfigRead of the id failed")?;
    if id != u64::from(info.vendor) | u64::from(info.device) << 16 {
        return Err("ConfigRead disagrees with Info");
    }
    if dev(DeviceOp::ConfigRead, 2, 2) != Ok(u64::from(info.device)) {
        return Err("a 2-byte read is wrong");
    }
    refused(
        dev(DeviceOp::ConfigRead, 1, 2),
        SysError::BadArgument,
        "misaligned read allowed",
    )?;
    refused(
        dev(DeviceOp::ConfigRead, 0, 3),
        SysError::BadArgument,
        "3-byte read allowed",
    )?;
    refused(
        dev(DeviceOp::ConfigRead, 0x1000, 4),
        SysError::BadArgument,
        "read past config space allowed",
    )?;
    // The BARs and the ROM are the kernel's; the command register is not.
    for off in [0x10u64, 0x20, 0x24, 0x30] {
        refused(
            dev(DeviceOp::ConfigWrite, off | 4 << 16, 0),
            SysError::NoRights,
            "a BAR or ROM write allowed",
        )?;
    }
    refused(
        dev(DeviceOp::ConfigWrite, 0x22 | 2 << 16, 0),
        SysError::NoRights,
        "a partial BAR write allowed",
    )?;
    let cmd = dev(DeviceOp::ConfigRead, 4, 2).map_err(|_| "command read failed")?;
    dev(DeviceOp::ConfigWrite, 4 | 2 << 16, cmd | 0x2).map_err(|_| "command write refused")?;
    if dev(DeviceOp::ConfigRead, 4, 2).map(|v| v & 0x2) != Ok(0x2) {
        return Err("the command write did not take");
    }
    refused(
        sys::device(Handle::new(9, 1), DeviceOp::Info, 0, 0),
        SysError::BadHandle,
        "a forged device handle worked",
    )?;
    Ok(())
}

/// Finds the virtio common configuration capability: (BAR, offset).
fn common_cfg() -> Option<(u64, u64)> {
    let mut cap = dev(DeviceOp::ConfigRead, 0x34, 1).ok()? & 0xfc;
    for _ in 0..48 {
        if cap == 0 {
            return None;
        }
        let head = dev(DeviceOp::ConfigRead, cap, 4).ok()?;
        let (id, next, cfg_type) = (head & 0xff, (head >> 8) & 0xfc, (head >> 24) & 0xff);
        if id == 0x09 && cfg_type == 1 {
            let bar = dev(DeviceOp::ConfigRead, cap + 4, 1).ok()?;
            let off = dev(DeviceOp::ConfigRead, cap + 8, 4).ok()?;
            return Some((bar, off));
        }
        cap = next;
    }
    None
}

fn bar() -> Result<(), &'static str> {
    let (bar, off) = common_cfg().ok_or("no virtio common configuration capability")?;
    let size = dev(DeviceOp::BarInfo, bar, 0).map_err(|_| "BarInfo failed")?;
    if size == 0 || size & 1 != 0 || off >= size {
        return Err("the common configuration BAR is absent or I/O");
    }
    refused(
        dev(DeviceOp::MapBar, 6, BAR_VA),
        SysError::BadArgument,
        "BAR 6 mapped",
    )?;
    for other in 0..6 {
        if dev(DeviceOp::BarInfo, other, 0) == Ok(0) {
            refused(
                dev(DeviceOp::MapBar, other, BAR_VA),
                SysError::BadArgument,
                "an absent BAR mapped",
            )?;
            break;
        }
    }
    refused(
        dev(DeviceOp::MapBar, bar, BAR_VA + 1),
        SysError::BadArgument,
        "an unaligned address accepted",
    )?;
    refused(
        dev(DeviceOp::MapBar, bar, 0xffff_8000_0000_0000),
        SysError::BadPointer,
        "a kernel address accepted",
    )?;
    dev(DeviceOp::MapBar, bar, BAR_VA).map_err(|_| "MapBar failed")?;
    refused(
        dev(DeviceOp::MapBar, bar, BAR_VA),
        SysError::AlreadyMapped,
        "the same pages mapped twice",
    )?;
    refused(
        dev(DeviceOp::MapBar, bar, BAR_VA + (1 << 30)),
        SysError::FrameInUse,
        "a BAR mapped at two addresses",
    )?;
    // device_feature at 0x04 and num_queues at 0x12 of the common config.
    let features = sys::peek32(BAR_VA + off + 4);
    let queues = sys::peek16(BAR_VA + off + 0x12);
    println!("devprobe: common config at BAR {bar} + {off:#x}: features {features:#x}, {queues} queue(s)");
    if features == 0 || queues == 0 {
        return Err("the mapped BAR does not read as a virtio device");
    }
    Ok(())
}

/// Its INTx line is bound to it (handle 2, right after the device), and
/// its frames (`frames=`) are one physically contiguous run.
fn irq_and_frames() -> Result<(), &'static str> {
    sys::irq_ack(Handle::new(2, 1)).map_err(|_| "no Irq handle after the Device handle")?;
    let g = ilwaco::rt::frame_grant().ok_or("no frame grant")?;
    let frames = g.frames();
    if frames.len() < 2 || frames.windows(2).any(|w| w[1] != w[0] + 1) {
        return Err("the frames are not one contiguous run");
    }
    Ok(())
}

fn report(name: &str, r: Result<(), &'static str>) -> bool {
    match r {
        Ok(()) => println!("TEST {name} ... ok"),
        Err(why) => println!("TEST {name} ... FAILED: {why}"),
    }
    r.is_ok()
}

fn main() -> i32 {
    let a = report("device_config", config());
    let b = report("device_bar", bar());
    let c = report("device_irq_and_dma", irq_and_frames());
    i32::from(!(a && b && c))
}
