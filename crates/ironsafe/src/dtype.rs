//! The element types a safetensors file can hold.

use std::fmt;
use std::str::FromStr;

/// An element type, as named in a safetensors header.
///
/// The variants are declared in the reference's order, which is ascending
/// alignment: the writer sorts tensors by this order, descending, so that
/// 8-byte types come first and every tensor starts on its natural alignment
/// when the data section does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(non_camel_case_types)]
pub enum Dtype {
    /// Boolean, one byte per value.
    BOOL,
    /// 4-bit float (e2m1), two values per byte.
    F4,
    /// 6-bit float (e2m3), four values per three bytes.
    F6_E2M3,
    /// 6-bit float (e3m2), four values per three bytes.
    F6_E3M2,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 8-bit integer.
    I8,
    /// 8-bit float, e5m2.
    F8_E5M2,
    /// 8-bit float, e4m3 (no infinities).
    F8_E4M3,
    /// 8-bit exponent-only scale (e8m0).
    F8_E8M0,
    /// 8-bit float, e4m3 with negative zero used as NaN.
    F8_E4M3FNUZ,
    /// 8-bit float, e5m2 with negative zero used as NaN.
    F8_E5M2FNUZ,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// IEEE half precision.
    F16,
    /// Brain float 16.
    BF16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// IEEE single precision.
    F32,
    /// Complex number of two single-precision floats.
    C64,
    /// IEEE double precision.
    F64,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
}

impl Dtype {
    /// Every dtype, in the writer's sort order (ascending alignment).
    pub const ALL: [Dtype; 22] = [
        Dtype::BOOL,
        Dtype::F4,
        Dtype::F6_E2M3,
        Dtype::F6_E3M2,
        Dtype::U8,
        Dtype::I8,
        Dtype::F8_E5M2,
        Dtype::F8_E4M3,
        Dtype::F8_E8M0,
        Dtype::F8_E4M3FNUZ,
        Dtype::F8_E5M2FNUZ,
        Dtype::I16,
        Dtype::U16,
        Dtype::F16,
        Dtype::BF16,
        Dtype::I32,
        Dtype::U32,
        Dtype::F32,
        Dtype::C64,
        Dtype::F64,
        Dtype::I64,
        Dtype::U64,
    ];

    /// The size of one element in bits.
    #[must_use]
    pub const fn bits(self) -> usize {
        match self {
            Dtype::F4 => 4,
            Dtype::F6_E2M3 | Dtype::F6_E3M2 => 6,
            Dtype::BOOL
            | Dtype::U8
            | Dtype::I8
            | Dtype::F8_E5M2
            | Dtype::F8_E4M3
            | Dtype::F8_E8M0
            | Dtype::F8_E4M3FNUZ
            | Dtype::F8_E5M2FNUZ => 8,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::BF16 => 16,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 32,
            Dtype::C64 | Dtype::F64 | Dtype::I64 | Dtype::U64 => 64,
        }
    }

    /// Whether an element is smaller than a byte, so that only whole groups of
    /// elements can be addressed.
    #[must_use]
    pub const fn is_sub_byte(self) -> bool {
        self.bits() < 8
    }

    /// The name used in headers, e.g. `"BF16"`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Dtype::BOOL => "BOOL",
            Dtype::F4 => "F4",
            Dtype::F6_E2M3 => "F6_E2M3",
            Dtype::F6_E3M2 => "F6_E3M2",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::F8_E5M2 => "F8_E5M2",
            Dtype::F8_E4M3 => "F8_E4M3",
            Dtype::F8_E8M0 => "F8_E8M0",
            Dtype::F8_E4M3FNUZ => "F8_E4M3FNUZ",
            Dtype::F8_E5M2FNUZ => "F8_E5M2FNUZ",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::F32 => "F32",
            Dtype::C64 => "C64",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
        }
    }

    /// The number of bits `elements` values of this dtype take, or `None` on
    /// overflow.
    #[must_use]
    pub fn bits_for(self, elements: usize) -> Option<usize> {
        elements.checked_mul(self.bits())
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a dtype name that is not one of the 22 the format defines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dtype `{0}`")]
pub struct UnknownDtype(pub String);

impl FromStr for Dtype {
    type Err = UnknownDtype;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Dtype::ALL
            .into_iter()
            .find(|dtype| dtype.name() == name)
            .ok_or_else(|| UnknownDtype(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order() {
        assert!(Dtype::ALL.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(Dtype::ALL.len(), 22);
    }

    #[test]
    fn names_round_trip() {
        for dtype in Dtype::ALL {
            assert_eq!(dtype.name().parse::<Dtype>(), Ok(dtype));
            assert_eq!(dtype.to_string(), dtype.name());
        }
    }

    #[test]
    fn unknown_and_lowercase_names_are_rejected() {
        assert_eq!("f32".parse::<Dtype>(), Err(UnknownDtype("f32".into())));
        assert_eq!(
            "Q4_0".parse::<Dtype>().unwrap_err().to_string(),
            "unknown dtype `Q4_0`"
        );
    }

    #[test]
    fn sizes_follow_the_format() {
        let bits: Vec<usize> = Dtype::ALL.iter().map(|d| d.bits()).collect();
        assert_eq!(
            bits,
            [
                8, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 16, 16, 16, 16, 32, 32, 32, 64, 64, 64, 64
            ]
        );
        // Alignment never decreases along the sort order, except that the
        // sub-byte floats sit after BOOL as the reference declares them.
        assert!(
            Dtype::ALL[2..]
                .windows(2)
                .all(|p| p[0].bits() <= p[1].bits())
        );
        assert!(Dtype::F4.is_sub_byte() && !Dtype::U8.is_sub_byte());
        assert_eq!(Dtype::F6_E2M3.bits_for(4), Some(24));
        assert_eq!(Dtype::U64.bits_for(usize::MAX), None);
    }
}
