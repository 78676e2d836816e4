//! Client helpers for the pager requests the supervisor sends
//! (`serac_protocol::pager::Request::{Grant, Region}`).

use serac_protocol::client::{rpc, ClientError, Transport};
use serac_protocol::pager::Reply;
use serac_protocol::DomainId;

pub use serac_protocol::pager::Request;

/// Tells the pager about frames given to it (see [`Request::Grant`]).
pub fn grant<T: Transport>(t: &mut T, first: u64, count: u64) -> Result<(), ClientError> {
    match rpc(t, &Request::Grant { first, count })? {
        Reply::Ok => Ok(()),
        _ => Err(ClientError::UnexpectedReply),
    }
}

/// Names a zero-fill region of `domain` (see [`Request::Region`]).
pub fn region<T: Transport>(
    t: &mut T,
    domain: DomainId,
    start: u64,
    end: u64,
) -> Result<(), ClientError> {
    match rpc(t, &Request::Region { domain, start, end })? {
        Reply::Ok => Ok(()),
        _ => Err(ClientError::UnexpectedReply),
    }
}
