//! HPACK (RFC 7541) header block decoding with one direction's dynamic table.
//!
//! Owns the static table, the Huffman decoder, integer and string literals, and [`Decoder`], the
//! dynamic table of one direction of one connection. Must not touch framing (that is `conn`).
//!
//! A decoder whose table did not start empty under our eyes (the capture began mid-connection, or
//! a gap swallowed a header block) is *partial*: entries inserted since are still exact (the newest
//! entries of a table are the same whatever older ones we missed), but a reference past them is
//! unresolved. Those fields are counted and left out, never guessed.

use std::collections::VecDeque;
use std::sync::OnceLock;

use super::huffman_table::CODES;

/// Per-entry overhead of the dynamic table size (RFC 7541 §4.1).
const ENTRY_OVERHEAD: usize = 32;

/// RFC 7541 Appendix A: the static table, indices 1 to 61.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Why a header block could not be decoded at all. After any of these the dynamic table is no
/// longer trusted (the decoder turns partial).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpackError {
    /// The block ended inside a representation.
    Truncated,
    /// An integer longer than any valid one.
    IntegerOverflow,
    /// Index 0, or an index past the table of a decoder that saw the whole connection.
    BadIndex,
    /// Invalid Huffman code, EOS inside a string, or bad padding.
    BadHuffman,
    /// A table size update above the decoder's limit.
    TableSizeTooLarge,
}

/// What decoding one header block gave.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlockOutcome {
    /// Fields whose name or value referenced dynamic entries this decoder never saw; they are
    /// left out of the output.
    pub unresolved: u32,
    /// Fields decoded but not kept because the output was already at its byte limit.
    pub dropped: u32,
}

/// One dynamic table entry. `name` is `None` when it was inserted with a name this decoder
/// could not resolve: its position is still exact, its name is not known.
#[derive(Debug, Clone)]
struct Entry {
    name: Option<String>,
    value: String,
    size: usize,
}

/// The HPACK decoding context of one direction of one connection.
#[derive(Debug, Clone)]
pub struct Decoder {
    table: VecDeque<Entry>,
    size: usize,
    /// The table size the encoder set last (at most `cap`).
    max_size: usize,
    /// The largest table size accepted (our memory bound).
    cap: usize,
    /// True when the table is known from its start (empty), so every reference must resolve.
    complete: bool,
}

impl Decoder {
    /// A decoder that saw the connection start (`complete`), or one that did not, with its
    /// table bounded by `cap` bytes (HPACK accounting).
    pub fn new(cap: usize, complete: bool) -> Self {
        Self { table: VecDeque::new(), size: 0, max_size: cap.min(4096), cap, complete }
    }

    /// Whether every entry of the table is known.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Marks the table as no longer known in full (a header block was lost). The entries kept
    /// stay valid only if no insertion was missed, which we cannot know: drop them.
    pub fn lose_context(&mut self) {
        self.table.clear();
        self.size = 0;
        self.complete = false;
    }

    /// The dynamic table's current size (HPACK accounting), bounded by the cap.
    pub fn table_size(&self) -> usize {
        self.size
    }

    /// Decodes one complete header block, appending fields to `out` while their bytes (name and
    /// value) total at most `max_bytes` over `out`. On error the table is not trusted anymore
    /// and the decoder turns partial; fields decoded before the error stay in `out`.
    pub fn decode(
        &mut self,
        block: &[u8],
        out: &mut Vec<(String, String)>,
        max_bytes: usize,
    ) -> Result<BlockOutcome, HpackError> {
        let result = self.decode_inner(block, out, max_bytes);
        if result.is_err() {
            self.lose_context();
        }
        result
    }

    fn decode_inner(
        &mut self,
        block: &[u8],
        out: &mut Vec<(String, String)>,
        max_bytes: usize,
    ) -> Result<BlockOutcome, HpackError> {
        let mut outcome = BlockOutcome::default();
        let mut kept: usize = out.iter().map(|(n, v)| n.len() + v.len()).sum();
        let mut pos = 0;
        while let Some(&first) = block.get(pos) {
            let field = if first & 0x80 != 0 {
                let index = read_int(block, &mut pos, 7)?;
                match self.lookup(index)? {
                    Lookup::Found(name, value) => Some((name.to_string(), value.to_string())),
                    Lookup::Unknown => None,
                }
            } else if first & 0xe0 == 0x20 {
                let size = read_int(block, &mut pos, 5)?;
                if size > self.cap {
                    return Err(HpackError::TableSizeTooLarge);
                }
                self.max_size = size;
                self.evict();
                // An empty table is a known table, whatever came before.
                if size == 0 {
                    self.complete = true;
                }
                continue;
            } else {
                let (prefix, index_it) = if first & 0x40 != 0 { (6, true) } else { (4, false) };
                let name_index = read_int(block, &mut pos, prefix)?;
                let name: Option<String> = if name_index == 0 {
                    Some(read_string(block, &mut pos)?)
                } else {
                    match self.lookup(name_index)? {
                        Lookup::Found(name, _) => Some(name.to_string()),
                        Lookup::Unknown => None,
                    }
                };
                let value = read_string(block, &mut pos)?;
                if index_it {
                    self.insert(name.clone(), value.clone());
                }
                name.map(|n| (n, value))
            };
            match field {
                Some((name, value)) => {
                    if kept + name.len() + value.len() <= max_bytes {
                        kept += name.len() + value.len();
                        out.push((name, value));
                    } else {
                        outcome.dropped += 1;
                    }
                }
                None => outcome.unresolved += 1,
            }
        }
        Ok(outcome)
    }

    fn lookup(&self, index: usize) -> Result<Lookup<'_>, HpackError> {
        if index == 0 {
            return Err(HpackError::BadIndex);
        }
        if let Some((name, value)) = STATIC_TABLE.get(index - 1) {
            return Ok(Lookup::Found(name, value));
        }
        match self.table.get(index - 1 - STATIC_TABLE.len()) {
            Some(Entry { name: Some(name), value, .. }) => Ok(Lookup::Found(name, value)),
            // Its value is known but a field without its name is no field: unresolved.
            Some(Entry { name: None, .. }) => Ok(Lookup::Unknown),
            None if self.complete => Err(HpackError::BadIndex),
            None => Ok(Lookup::Unknown),
        }
    }

    fn insert(&mut self, name: Option<String>, value: String) {
        // An unknown name counts as empty: a lower bound of the real size, so this table keeps
        // at least what the real one keeps, at the same positions (see the module doc).
        let size = name.as_ref().map_or(0, String::len) + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            // RFC 7541 §4.4: an entry larger than the table empties it and is not added.
            self.table.clear();
            self.size = 0;
            return;
        }
        self.table.push_front(Entry { name, value, size });
        self.size += size;
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max_size {
            match self.table.pop_back() {
                Some(e) => self.size -= e.size,
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }
}

enum Lookup<'a> {
    Found(&'a str, &'a str),
    Unknown,
}

/// Reads an HPACK integer with an `n`-bit prefix at `*pos`; values above 2^28 are refused (no
/// valid index, length or size is that large here).
fn read_int(block: &[u8], pos: &mut usize, n: u8) -> Result<usize, HpackError> {
    let mask: u8 = ((1u16 << n) - 1) as u8;
    let first = *block.get(*pos).ok_or(HpackError::Truncated)?;
    *pos += 1;
    let mut value = usize::from(first & mask);
    if value < usize::from(mask) {
        return Ok(value);
    }
    let mut shift = 0u32;
    loop {
        let b = *block.get(*pos).ok_or(HpackError::Truncated)?;
        *pos += 1;
        value += usize::from(b & 0x7f) << shift;
        if value > 1 << 28 {
            return Err(HpackError::IntegerOverflow);
        }
        if b & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
    }
}

/// Reads a string literal (plain or Huffman-coded) at `*pos`, as text (invalid UTF-8 replaced).
fn read_string(block: &[u8], pos: &mut usize) -> Result<String, HpackError> {
    let huffman = block.get(*pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = read_int(block, pos, 7)?;
    let end = pos.checked_add(len).ok_or(HpackError::Truncated)?;
    let raw = block.get(*pos..end).ok_or(HpackError::Truncated)?;
    *pos = end;
    if huffman {
        let mut bytes = Vec::with_capacity(raw.len() * 8 / 5);
        huffman_decode(raw, &mut bytes)?;
        Ok(into_text(bytes))
    } else {
        Ok(String::from_utf8_lossy(raw).into_owned())
    }
}

fn into_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Huffman decoding state machine over 4-bit steps: `[state][nibble]` gives the next state, up
/// to one emitted symbol, and whether the state after it may end the string.
struct NibbleTable {
    steps: Vec<[Step; 16]>,
}

#[derive(Clone, Copy, Default)]
struct Step {
    next: u16,
    /// Symbol emitted on this step + 1, or 0 for none.
    emit: u16,
    /// The step ran into EOS or an unused code.
    fail: bool,
    /// The bits since the last symbol are all ones and fewer than 8: a valid end.
    accepting: bool,
}

/// A binary tree of the code: node children, leaves as `LEAF | symbol`.
const LEAF: u16 = 0x8000;

fn nibble_table() -> &'static NibbleTable {
    static TABLE: OnceLock<NibbleTable> = OnceLock::new();
    TABLE.get_or_init(build_nibble_table)
}

fn build_nibble_table() -> NibbleTable {
    // The tree: node 0 is the root; internal nodes hold two children (0 = none yet).
    let mut tree: Vec<[u16; 2]> = vec![[0, 0]];
    for (symbol, &(code, len)) in CODES.iter().enumerate() {
        let mut node = 0usize;
        for bit in (0..len).rev() {
            let b = usize::from((code >> bit) & 1 == 1);
            let last = bit == 0;
            let child = tree.get(node).and_then(|n| n.get(b)).copied().unwrap_or(0);
            if last {
                if let Some(slot) = tree.get_mut(node).and_then(|n| n.get_mut(b)) {
                    *slot = LEAF | symbol as u16;
                }
            } else if child == 0 {
                tree.push([0, 0]);
                let new = (tree.len() - 1) as u16;
                if let Some(slot) = tree.get_mut(node).and_then(|n| n.get_mut(b)) {
                    *slot = new;
                }
                node = usize::from(new);
            } else {
                node = usize::from(child);
            }
        }
    }
    // Each internal node is a state; along with it, how many bits deep it is and whether the
    // path to it is all ones (a state that can be padding).
    let mut depth = vec![0u8; tree.len()];
    let mut ones = vec![false; tree.len()];
    if let Some(o) = ones.get_mut(0) {
        *o = true;
    }
    for node in 0..tree.len() {
        for b in 0..2 {
            let child = tree.get(node).and_then(|n| n.get(b)).copied().unwrap_or(0);
            if child != 0 && child & LEAF == 0 {
                let (d, o) = (depth.get(node).copied().unwrap_or(0), ones.get(node).copied().unwrap_or(false));
                if let Some(slot) = depth.get_mut(usize::from(child)) {
                    *slot = d + 1;
                }
                if let Some(slot) = ones.get_mut(usize::from(child)) {
                    *slot = o && b == 1;
                }
            }
        }
    }
    let mut steps = vec![[Step::default(); 16]; tree.len()];
    for (state, row) in steps.iter_mut().enumerate() {
        for (nibble, step) in row.iter_mut().enumerate() {
            let mut node = state;
            let mut emit = 0u16;
            let mut fail = false;
            for bit in (0..4).rev() {
                let b = (nibble >> bit) & 1;
                let child = tree.get(node).and_then(|n| n.get(b)).copied().unwrap_or(0);
                if child & LEAF != 0 {
                    let symbol = child & !LEAF;
                    // A nibble holds at most one symbol: every code is at least 5 bits long.
                    if symbol == 256 || emit != 0 {
                        fail = true;
                        break;
                    }
                    emit = symbol + 1;
                    node = 0;
                } else if child == 0 {
                    fail = true;
                    break;
                } else {
                    node = usize::from(child);
                }
            }
            let accepting = depth.get(node).is_some_and(|&d| d < 8) && ones.get(node).copied().unwrap_or(false);
            *step = Step { next: node as u16, emit, fail, accepting };
        }
    }
    NibbleTable { steps }
}

/// Decodes a Huffman-coded string into `out`.
pub(crate) fn huffman_decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    let table = nibble_table();
    let mut state = 0usize;
    let mut accepting = true;
    for &byte in src {
        for nibble in [byte >> 4, byte & 0x0f] {
            let step =
                table.steps.get(state).and_then(|row| row.get(usize::from(nibble))).ok_or(HpackError::BadHuffman)?;
            if step.fail {
                return Err(HpackError::BadHuffman);
            }
            if step.emit != 0 {
                out.push((step.emit - 1) as u8);
            }
            state = usize::from(step.next);
            accepting = step.accepting;
        }
    }
    if accepting { Ok(()) } else { Err(HpackError::BadHuffman) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("decodes")).collect()
    }

    #[test]
    fn huffman_rfc_examples() {
        let mut out = Vec::new();
        huffman_decode(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"), &mut out).expect("decodes");
        assert_eq!(out, b"www.example.com");
        out.clear();
        huffman_decode(&hex("a8eb 1064 9cbf"), &mut out).expect("decodes");
        assert_eq!(out, b"no-cache");
        out.clear();
        huffman_decode(&hex("6402"), &mut out).expect("decodes");
        assert_eq!(out, b"302");
        // EOS inside, and padding of zeros, are refused.
        assert!(huffman_decode(&[0xff, 0xff, 0xff, 0xff], &mut Vec::new()).is_err());
        assert!(huffman_decode(&[0x00], &mut Vec::new()).is_err());
    }

    #[test]
    fn every_symbol_round_trips_through_the_code() {
        // Encode each byte value with the RFC code, then decode.
        for (sym, &(code, len)) in CODES.iter().enumerate().take(256) {
            let mut bits: u64 = u64::from(code);
            let mut n = u32::from(len);
            let pad = (8 - n % 8) % 8;
            bits = (bits << pad) | ((1 << pad) - 1);
            n += pad;
            let bytes: Vec<u8> = (0..n / 8).rev().map(|i| (bits >> (i * 8)) as u8).collect();
            let mut out = Vec::new();
            huffman_decode(&bytes, &mut out).expect("decodes");
            assert_eq!(out, [sym as u8]);
        }
    }

    /// RFC 7541 C.4: requests with Huffman coding, one decoder across three blocks.
    #[test]
    fn rfc_c4_requests_share_the_dynamic_table() {
        let mut d = Decoder::new(4096, true);
        let mut out = Vec::new();
        d.decode(&hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"), &mut out, 8192).expect("decodes");
        assert_eq!(
            out,
            [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(d.table_size(), 57);
        out.clear();
        d.decode(&hex("8286 84be 5886 a8eb 1064 9cbf"), &mut out, 8192).expect("decodes");
        assert_eq!(out[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(out[4], ("cache-control".into(), "no-cache".into()));
        out.clear();
        d.decode(&hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"), &mut out, 8192).expect("decodes");
        assert_eq!(out[2], (":path".into(), "/index.html".into()));
        assert_eq!(out[4], ("custom-key".into(), "custom-value".into()));
        assert_eq!(d.table_size(), 164);
    }

    /// RFC 7541 C.6: responses with eviction in a 256-byte table.
    #[test]
    fn rfc_c6_responses_evict() {
        let mut d = Decoder::new(256, true);
        d.max_size = 256;
        let mut out = Vec::new();
        d.decode(
            &hex("4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3"),
            &mut out,
            8192,
        )
        .expect("decodes");
        assert_eq!(out[0], (":status".into(), "302".into()));
        assert_eq!(d.table_size(), 222);
        out.clear();
        d.decode(&hex("4883 640e ffc1 c0bf"), &mut out, 8192).expect("decodes");
        assert_eq!(out[0], (":status".into(), "307".into()));
        assert_eq!(out[3], ("location".into(), "https://www.example.com".into()));
        assert_eq!(d.table_size(), 222);
    }

    #[test]
    fn partial_decoder_leaves_unknown_references_out() {
        let mut d = Decoder::new(4096, false);
        let mut out = Vec::new();
        // Index 62 (never seen), then a literal with indexing of custom-key, then index 62 again
        // (now that literal), then index 63 (the unknown one, one further back).
        let mut block = vec![0xbe];
        block.extend(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"));
        block.extend([0xbe, 0xbf]);
        let o = d.decode(&block, &mut out, 8192).expect("decodes");
        assert_eq!(o.unresolved, 2);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], ("custom-key".into(), "custom-header".into()));
        // A complete decoder refuses the same block.
        let mut d = Decoder::new(4096, true);
        assert_eq!(d.decode(&block, &mut Vec::new(), 8192), Err(HpackError::BadIndex));
        assert!(!d.is_complete());
    }

    #[test]
    fn limits_hold() {
        let mut d = Decoder::new(100, true);
        // Size update above the cap.
        assert_eq!(d.decode(&[0x3f, 0xe1, 0x1f], &mut Vec::new(), 10), Err(HpackError::TableSizeTooLarge));
        // Kept bytes bounded.
        let mut d = Decoder::new(4096, true);
        let mut out = Vec::new();
        let o = d.decode(&hex("8286 84"), &mut out, 14).expect("decodes");
        assert_eq!(out.len(), 1);
        assert_eq!(o.dropped, 2);
        // Oversized integers.
        assert_eq!(
            d.decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], &mut out, 10),
            Err(HpackError::IntegerOverflow)
        );
    }
}
