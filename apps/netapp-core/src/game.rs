//! udp-echo's game state: a bounded table of clients, each with the
//! sequence numbers it sent, as a game server tracks its players.
//!
//! A datagram is `seq: u32 LE` then a payload. The reply is the header
//! [`Reply`] (the client's sequence number, how many datagrams of it the
//! server has seen, how many came out of order or repeated) then the same
//! payload. A client unheard of for longest is evicted when the table is
//! full (counted).

/// A client's address and port.
pub type ClientId = ([u8; 4], u16);

/// Bytes of the reply header.
pub const REPLY_HEADER: usize = 16;

/// One client's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Client {
    /// Highest sequence number seen.
    pub last_seq: u32,
    /// Datagrams seen.
    pub received: u32,
    /// Datagrams with a sequence number not above `last_seq`.
    pub out_of_order: u32,
    /// When it last sent (the table's clock).
    pub last_seen: u64,
}

/// The reply header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The datagram's sequence number.
    pub seq: u32,
    /// The client's datagrams seen, this one included.
    pub received: u32,
    /// Its out-of-order or repeated datagrams.
    pub out_of_order: u32,
    /// Clients in the table.
    pub clients: u32,
}

impl Reply {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; REPLY_HEADER] {
        let mut b = [0u8; REPLY_HEADER];
        for (c, v) in
            b.chunks_exact_mut(4)
                .zip([self.seq, self.received, self.out_of_order, self.clients])
        {
            c.copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// Decodes a header from the front of `b`.
    pub fn decode(b: &[u8]) -> Option<Reply> {
        let w = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(
                b.get(i * 4..i * 4 + 4)?.try_into().ok()?,
            ))
        };
        Some(Reply {
            seq: w(0)?,
            received: w(1)?,
            out_of_order: w(2)?,
            clients: w(3)?,
        })
    }
}

/// Why a datagram got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Shorter than the 4-byte sequence number.
    TooShort,
}

/// The table.
#[derive(Debug)]
pub struct Table<const N: usize> {
    slots: [Option<(ClientId, Client)>; N],
    clock: u64,
    /// Clients evicted to make room.
    pub evicted: u64,
}

impl<const N: usize> Default for Table<N> {
    fn default() -> Self {
        Table {
            slots: [None; N],
            clock: 0,
            evicted: 0,
        }
    }
}

impl<const N: usize> Table<N> {
    /// Clients held.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Whether no client is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A client's state.
    pub fn get(&self, id: ClientId) -> Option<&Client> {
        self.slots
            .iter()
            .flatten()
            .find(|(k, _)| *k == id)
            .map(|(_, c)| c)
    }

    /// Records a datagram from `id` and returns the reply header.
    pub fn datagram(&mut self, id: ClientId, data: &[u8]) -> Result<Reply, Refused> {
        let seq = u32::from_le_bytes(
            data.get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or(Refused::TooShort)?,
        );
        self.clock += 1;
        let clock = self.clock;
        let i = match self
            .slots
            .iter()
            .position(|s| s.is_some_and(|(k, _)| k == id))
        {
            Some(i) => i,
            None => {
                let free = self.slots.iter().position(Option::is_none);
                let i = match free {
                    Some(i) => i,
                    None => {
                        self.evicted += 1;
                        self.slots
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, s)| s.map_or(0, |(_, c)| c.last_seen))
                            .map_or(0, |(i, _)| i)
                    }
                };
                if let Some(s) = self.slots.get_mut(i) {
                    *s = Some((id, Client::default()));
                }
                i
            }
        };
        let clients = u32::try_from(self.len()).unwrap_or(u32::MAX);
        let Some(Some((_, c))) = self.slots.get_mut(i) else {
            return Err(Refused::TooShort);
        };
        if c.received > 0 && seq <= c.last_seq {
            c.out_of_order += 1;
        } else {
            c.last_seq = seq;
        }
        c.received += 1;
        c.last_seen = clock;
        Ok(Reply {
            seq,
            received: c.received,
            out_of_order: c.out_of_order,
            clients,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: ClientId = ([10, 0, 1, 1], 5000);
    const B: ClientId = ([10, 0, 1, 2], 5000);

    #[test]
    fn sequence_state_per_client() {
        let mut t = Table::<2>::default();
        assert_eq!(t.datagram(A, &[1]), Err(Refused::TooShort));
        let r = t.datagram(A, &1u32.to_le_bytes()).unwrap();
        assert_eq!((r.seq, r.received, r.out_of_order, r.clients), (1, 1, 0, 1));
        t.datagram(A, &3u32.to_le_bytes()).unwrap();
        let r = t.datagram(A, &2u32.to_le_bytes()).unwrap();
        assert_eq!((r.received, r.out_of_order), (3, 1));
        assert_eq!(t.get(A).unwrap().last_seq, 3);
        let r = t.datagram(B, &0u32.to_le_bytes()).unwrap();
        assert_eq!((r.received, r.out_of_order, r.clients), (1, 0, 2));
        // A third client evicts the one heard of longest ago (A).
        t.datagram(B, &1u32.to_le_bytes()).unwrap();
        let c = ([10, 0, 1, 3], 1);
        t.datagram(c, &9u32.to_le_bytes()).unwrap();
        assert_eq!((t.evicted, t.len()), (1, 2));
        assert!(t.get(A).is_none() && t.get(B).is_some());
        assert_eq!(Reply::decode(&r.encode()), Some(r));
        assert_eq!(Reply::decode(&[0; 15]), None);
    }

    proptest! {
        #[test]
        fn the_table_stays_bounded_and_counts(
            dgrams in proptest::collection::vec((0u8..12, proptest::collection::vec(any::<u8>(), 0..8)), 0..200),
        ) {
            let mut t = Table::<4>::default();
            for (who, d) in dgrams {
                let id = ([10, 0, 1, who], 7);
                match t.datagram(id, &d) {
                    Ok(r) => {
                        prop_assert!(d.len() >= 4);
                        prop_assert!(r.out_of_order < r.received);
                        prop_assert_eq!(t.get(id).map(|c| c.received), Some(r.received));
                    }
                    Err(Refused::TooShort) => prop_assert!(d.len() < 4),
                }
                prop_assert!(t.len() <= 4);
            }
        }
    }
}
