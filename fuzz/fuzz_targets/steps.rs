//! The step encoding every connection-parser fuzz target shares: the bytes after the target's config byte
//! become feeds, gaps and closes on both sides of one `ConnParser`.
//!
//! Owns the encoding and the drive loop. Must not know any protocol: each target builds its parser, checks
//! its own bound after every step, and inspects the records.

use loupe_protocols::{ConnParser, Side};

/// Drives `conn` through `steps` and returns every record it finished, after a final close.
///
/// Each step is one control byte, then a piece of the following bytes. Control bit 0: the side; bits 1-2:
/// 0 or 1 = feed, 2 = gap, 3 = close (only when bits 3-7 are 0, so rarely); bits 3-7: the length - 1.
/// `after_step` runs after every step (the targets check their memory bound there).
pub fn drive<P: ConnParser>(conn: &mut P, mut steps: &[u8], mut after_step: impl FnMut(&P)) -> Vec<P::Record> {
    let mut records = Vec::new();
    let mut ts: u64 = 0;
    while let Some((&control, tail)) = steps.split_first() {
        ts += 1;
        let side = if control & 1 == 0 { Side::Request } else { Side::Response };
        let len = usize::from(control >> 3) + 1;
        match (control >> 1) & 3 {
            2 => {
                conn.gap(side, len as u64, ts);
                steps = tail;
            }
            3 if control >> 3 == 0 => {
                conn.close(ts);
                steps = tail;
            }
            _ => {
                let (piece, remaining) = tail.split_at(len.min(tail.len()));
                conn.feed(side, piece, ts);
                steps = remaining;
            }
        }
        after_step(conn);
        conn.drain_records(&mut records);
    }
    conn.close(ts + 1);
    conn.drain_records(&mut records);
    records
}
