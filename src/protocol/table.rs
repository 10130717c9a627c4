//! A guard in front of field-table decoding. `amq_protocol` parses nested tables and arrays
//! recursively, and one frame can nest thousands of levels: enough to overflow a worker's
//! stack and take every connection down with it. `check` walks a table iteratively and
//! refuses one nested deeper than `MAX_DEPTH` (or whose lengths lie) before it is decoded.

/// Deeper than any real client nests headers or arguments.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableError {
    TooDeep,
    Malformed,
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

/// Check the table starting at `b[0]` (with its 4-byte length); returns its total size.
pub fn check(b: &[u8]) -> Result<usize, TableError> {
    let len = u32_at(b, 0).ok_or(TableError::Malformed)?;
    let end = 4usize
        .checked_add(len)
        .filter(|e| *e <= b.len())
        .ok_or(TableError::Malformed)?;
    // (end of the container, whether it is a table (names before values))
    let mut stack: Vec<(usize, bool)> = vec![(end, true)];
    let mut at = 4;
    while let Some(&(container_end, is_table)) = stack.last() {
        if at == container_end {
            stack.pop();
            continue;
        }
        if at > container_end {
            return Err(TableError::Malformed);
        }
        if is_table {
            let n = *b.get(at).ok_or(TableError::Malformed)? as usize;
            at += 1 + n;
        }
        let kind = *b.get(at).ok_or(TableError::Malformed)?;
        at += 1;
        let fixed = match kind {
            b't' | b'b' | b'B' => Some(1),
            b's' | b'u' | b'U' => Some(2),
            b'I' | b'i' | b'f' => Some(4),
            b'l' | b'L' | b'T' | b'd' => Some(8),
            b'D' => Some(5),
            b'V' => Some(0),
            b'S' | b'x' => Some(4 + u32_at(b, at).ok_or(TableError::Malformed)?),
            b'F' | b'A' => None,
            _ => return Err(TableError::Malformed),
        };
        match fixed {
            Some(n) => at += n,
            None => {
                if stack.len() >= MAX_DEPTH {
                    return Err(TableError::TooDeep);
                }
                let inner = u32_at(b, at).ok_or(TableError::Malformed)?;
                let inner_end = (at + 4)
                    .checked_add(inner)
                    .filter(|e| *e <= container_end)
                    .ok_or(TableError::Malformed)?;
                stack.push((inner_end, kind == b'F'));
                at += 4;
                // the container's own end is resumed once the nested one is done
                let _ = inner_end;
            }
        }
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> Vec<u8> {
        let mut table = 0u32.to_be_bytes().to_vec();
        for _ in 0..levels {
            let mut entry = vec![1u8, b'a', b'F'];
            entry.extend_from_slice(&table);
            let mut outer = (entry.len() as u32).to_be_bytes().to_vec();
            outer.extend_from_slice(&entry);
            table = outer;
        }
        table
    }

    #[test]
    fn ordinary_tables_pass_and_report_their_size() {
        let t = [
            0u8, 0, 0, 11, 1, b'k', b'S', 0, 0, 0, 1, b'v', 1, b'n', b'V',
        ];
        // 4 + 11 bytes: "k" => S "v", "n" => void
        assert_eq!(check(&t[..15]), Ok(15));
        assert_eq!(
            check(&nested(MAX_DEPTH - 1)),
            Ok(nested(MAX_DEPTH - 1).len())
        );
    }

    #[test]
    fn thousands_of_levels_are_refused_without_recursion() {
        assert_eq!(check(&nested(20_000)), Err(TableError::TooDeep));
    }

    #[test]
    fn arrays_count_as_nesting_and_lying_lengths_are_malformed() {
        // {"a": A[ F{} ]}
        let t = [0u8, 0, 0, 12, 1, b'a', b'A', 0, 0, 0, 5, b'F', 0, 0, 0, 0];
        assert_eq!(check(&t), Ok(16));
        let mut lying = t;
        lying[10] = 50;
        assert_eq!(check(&lying), Err(TableError::Malformed));
        assert_eq!(check(&[0, 0, 0, 9, 1]), Err(TableError::Malformed));
    }
}
