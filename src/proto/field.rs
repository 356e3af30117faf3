//! Non-panicking big-endian field access used by every view.
//!
//! Every read returns zeros and every write does nothing when the field
//! lies outside the buffer. After a view's `new_checked` succeeded this never
//! happens, but it means that no accessor can panic even if a caller changed
//! the bytes (and so the length fields) under a mutable view.

/// Reads `N` bytes at `off`, or zeros when out of range.
#[inline(always)]
pub(crate) fn get<const N: usize>(buf: &[u8], off: usize) -> [u8; N] {
    match buf.get(off..).and_then(|s| s.first_chunk::<N>()) {
        Some(a) => *a,
        None => [0; N],
    }
}

/// Writes `N` bytes at `off`; does nothing when out of range.
#[inline(always)]
pub(crate) fn set<const N: usize>(buf: &mut [u8], off: usize, value: [u8; N]) {
    if let Some(a) = buf.get_mut(off..).and_then(|s| s.first_chunk_mut::<N>()) {
        *a = value;
    }
}

/// Reads one byte, or zero when out of range.
#[inline(always)]
pub(crate) fn get_u8(buf: &[u8], off: usize) -> u8 {
    buf.get(off).copied().unwrap_or(0)
}

/// Writes one byte; does nothing when out of range.
#[inline(always)]
pub(crate) fn set_u8(buf: &mut [u8], off: usize, value: u8) {
    if let Some(b) = buf.get_mut(off) {
        *b = value;
    }
}

/// Reads a big-endian `u16`, or zero when out of range.
#[inline(always)]
pub(crate) fn get_u16(buf: &[u8], off: usize) -> u16 {
    u16::from_be_bytes(get(buf, off))
}

/// Writes a big-endian `u16`; does nothing when out of range.
#[inline(always)]
pub(crate) fn set_u16(buf: &mut [u8], off: usize, value: u16) {
    set(buf, off, value.to_be_bytes());
}

/// Reads a big-endian `u32`, or zero when out of range.
#[inline(always)]
pub(crate) fn get_u32(buf: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(get(buf, off))
}

/// Writes a big-endian `u32`; does nothing when out of range.
#[inline(always)]
pub(crate) fn set_u32(buf: &mut [u8], off: usize, value: u32) {
    set(buf, off, value.to_be_bytes());
}

/// `buf[start..end]`, or an empty slice when the range is not inside `buf`.
#[inline(always)]
pub(crate) fn range(buf: &[u8], start: usize, end: usize) -> &[u8] {
    buf.get(start..end).unwrap_or(&[])
}

/// `&mut buf[start..end]`, or an empty slice when the range is not inside `buf`.
#[inline(always)]
pub(crate) fn range_mut(buf: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    buf.get_mut(start..end).unwrap_or(&mut [])
}

/// Swaps the two `N`-byte fields at `a` and `b` (which must not overlap);
/// does nothing when either is out of range.
#[inline(always)]
pub(crate) fn swap<const N: usize>(buf: &mut [u8], a: usize, b: usize) {
    let va: [u8; N] = get(buf, a);
    let vb: [u8; N] = get(buf, b);
    if buf.get(a..).is_some_and(|s| s.len() >= N) && buf.get(b..).is_some_and(|s| s.len() >= N) {
        set(buf, a, vb);
        set(buf, b, va);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_is_harmless() {
        let mut b = [1u8, 2, 3];
        assert_eq!(get_u16(&b, 1), 0x0203);
        assert_eq!(get_u16(&b, 2), 0);
        assert_eq!(get_u32(&b, usize::MAX), 0);
        set_u32(&mut b, 1, 7);
        set_u16(&mut b, usize::MAX, 7);
        set_u8(&mut b, 3, 9);
        assert_eq!(b, [1, 2, 3]);
        assert_eq!(range(&b, 2, 1), &[] as &[u8]);
        assert!(range_mut(&mut b, 0, 9).is_empty());
        swap::<2>(&mut b, 0, 2);
        assert_eq!(b, [1, 2, 3]);
        let mut c = [1u8, 2, 3, 4];
        swap::<2>(&mut c, 0, 2);
        assert_eq!(c, [3, 4, 1, 2]);
    }
}
