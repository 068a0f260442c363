//! Tensor elements as numbers: every dtype of whole bytes decoded to `f64`,
//! the 8- and 16-bit floats included, for comparing values and finding NaN
//! and infinity.

use ironsafe::Dtype;

/// Reads the element at the start of a slice.
type Decode = fn(&[u8]) -> f64;

/// How to read one element of a dtype.
#[derive(Clone, Copy)]
pub(crate) struct Decoder {
    /// Bytes per element (for C64, per real or imaginary part).
    pub(crate) width: usize,
    /// Whether the values can be NaN or infinite.
    pub(crate) float: bool,
    decode: Decode,
}

impl Decoder {
    /// The decoder of `dtype`, or `None` for the sub-byte floats (F4, F6),
    /// whose packing leaves single values without bytes of their own.
    pub(crate) fn of(dtype: Dtype) -> Option<Self> {
        let (width, float, decode): (usize, bool, Decode) = match dtype {
            Dtype::F4 | Dtype::F6_E2M3 | Dtype::F6_E3M2 => return None,
            Dtype::BOOL | Dtype::U8 => (1, false, |b| f64::from(b[0])),
            Dtype::I8 => (1, false, |b| f64::from(i8::from_le_bytes([b[0]]))),
            Dtype::I16 => (2, false, |b| f64::from(i16::from_le_bytes([b[0], b[1]]))),
            Dtype::U16 => (2, false, |b| f64::from(u16::from_le_bytes([b[0], b[1]]))),
            Dtype::I32 => (4, false, |b| f64::from(i32::from_le_bytes(array(b)))),
            Dtype::U32 => (4, false, |b| f64::from(u32::from_le_bytes(array(b)))),
            // Beyond 2^53 the nearest f64; equality is still judged on the bytes.
            #[allow(clippy::cast_precision_loss)]
            Dtype::I64 => (8, false, |b| i64::from_le_bytes(array(b)) as f64),
            #[allow(clippy::cast_precision_loss)]
            Dtype::U64 => (8, false, |b| u64::from_le_bytes(array(b)) as f64),
            Dtype::F64 => (8, true, |b| f64::from_le_bytes(array(b))),
            Dtype::F32 | Dtype::C64 => (4, true, |b| f64::from(f32::from_le_bytes(array(b)))),
            Dtype::BF16 => (2, true, |b| {
                f64::from(f32::from_bits(
                    u32::from(u16::from_le_bytes([b[0], b[1]])) << 16,
                ))
            }),
            Dtype::F16 => (2, true, |b| {
                minifloat(
                    u32::from(u16::from_le_bytes([b[0], b[1]])),
                    5,
                    10,
                    Special::Ieee,
                )
            }),
            Dtype::F8_E5M2 => (1, true, |b| minifloat(b[0].into(), 5, 2, Special::Ieee)),
            Dtype::F8_E4M3 => (1, true, |b| {
                minifloat(b[0].into(), 4, 3, Special::AllOnesNan)
            }),
            Dtype::F8_E4M3FNUZ => (1, true, |b| minifloat(b[0].into(), 4, 3, Special::Fnuz)),
            Dtype::F8_E5M2FNUZ => (1, true, |b| minifloat(b[0].into(), 5, 2, Special::Fnuz)),
            Dtype::F8_E8M0 => (1, true, |b| match b[0] {
                0xff => f64::NAN,
                e => 2f64.powi(i32::from(e) - 127),
            }),
        };
        Some(Self {
            width,
            float,
            decode,
        })
    }

    /// The values of a tensor's bytes, in order.
    pub(crate) fn values<'a>(&self, data: &'a [u8]) -> impl Iterator<Item = f64> + 'a {
        let decode = self.decode;
        data.chunks_exact(self.width).map(decode)
    }
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes[..N]
        .try_into()
        .expect("chunks have the element width")
}

/// Where a small float format keeps NaN and infinity.
#[derive(Clone, Copy)]
enum Special {
    /// As IEEE 754: the all-ones exponent is infinity (zero mantissa) or NaN.
    Ieee,
    /// No infinity; NaN is the all-ones exponent and mantissa (e4m3fn).
    AllOnesNan,
    /// No infinity, no negative zero: its bit pattern is NaN; the bias is
    /// one more than IEEE's (the `fnuz` formats).
    Fnuz,
}

/// Decodes the float of `exponent_bits` and `mantissa_bits` (plus a sign
/// bit) held in the low bits of `bits`.
fn minifloat(bits: u32, exponent_bits: u32, mantissa_bits: u32, special: Special) -> f64 {
    let sign = if bits >> (exponent_bits + mantissa_bits) & 1 == 1 {
        -1.0
    } else {
        1.0
    };
    let max_exponent = (1 << exponent_bits) - 1;
    let exponent = bits >> mantissa_bits & max_exponent;
    let mantissa = bits & ((1 << mantissa_bits) - 1);
    let mut bias: u32 = (1 << (exponent_bits - 1)) - 1;
    match special {
        Special::Ieee if exponent == max_exponent => {
            return if mantissa == 0 {
                sign * f64::INFINITY
            } else {
                f64::NAN
            };
        }
        Special::AllOnesNan if exponent == max_exponent && mantissa == (1 << mantissa_bits) - 1 => {
            return f64::NAN;
        }
        Special::Fnuz if sign < 0.0 && exponent == 0 && mantissa == 0 => return f64::NAN,
        Special::Fnuz => bias += 1,
        _ => {}
    }
    // Powers of two with integer exponents: `powf` gives them exactly.
    let scale = |power: f64| 2f64.powf(power);
    let (exponent, mantissa, mantissa_bits, bias) = (
        f64::from(exponent),
        f64::from(mantissa),
        f64::from(mantissa_bits),
        f64::from(bias),
    );
    let magnitude = if exponent == 0.0 {
        mantissa * scale(1.0 - bias - mantissa_bits)
    } else {
        (1.0 + mantissa * scale(-mantissa_bits)) * scale(exponent - bias)
    };
    sign * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(dtype: Dtype, bytes: &[u8]) -> Vec<f64> {
        Decoder::of(dtype).unwrap().values(bytes).collect()
    }

    #[test]
    fn half_precision_and_bfloat() {
        let f16 = decode(
            Dtype::F16,
            &[0x00, 0x3c, 0x00, 0x7c, 0x01, 0x00, 0x00, 0xc0],
        );
        assert_eq!(f16, [1.0, f64::INFINITY, 2f64.powi(-24), -2.0]);
        assert!(decode(Dtype::F16, &[0x00, 0x7e])[0].is_nan());
        assert_eq!(decode(Dtype::BF16, &[0x80, 0x3f, 0xc0, 0xbf]), [1.0, -1.5]);
    }

    #[test]
    fn eight_bit_floats() {
        assert_eq!(
            decode(Dtype::F8_E4M3, &[0x7e, 0x38, 0x01]),
            [448.0, 1.0, 2f64.powi(-9)]
        );
        assert!(decode(Dtype::F8_E4M3, &[0x7f])[0].is_nan());
        assert_eq!(
            decode(Dtype::F8_E5M2, &[0x7b, 0x3c, 0xfc]),
            [57344.0, 1.0, f64::NEG_INFINITY]
        );
        assert!(decode(Dtype::F8_E5M2, &[0x7d])[0].is_nan());
        assert_eq!(
            decode(Dtype::F8_E4M3FNUZ, &[0x7f, 0x40, 0x00]),
            [240.0, 1.0, 0.0]
        );
        assert_eq!(decode(Dtype::F8_E5M2FNUZ, &[0x7f, 0x40]), [57344.0, 1.0]);
        assert!(decode(Dtype::F8_E5M2FNUZ, &[0x80])[0].is_nan());
        assert_eq!(
            decode(Dtype::F8_E8M0, &[127, 130, 0]),
            [1.0, 8.0, 2f64.powi(-127)]
        );
        assert!(decode(Dtype::F8_E8M0, &[0xff])[0].is_nan());
    }

    #[test]
    fn integers_and_wide_floats() {
        assert_eq!(decode(Dtype::I8, &[0xff, 0x7f]), [-1.0, 127.0]);
        assert_eq!(decode(Dtype::U16, &[0xff, 0xff]), [65535.0]);
        assert_eq!(decode(Dtype::I64, &(-5i64).to_le_bytes()), [-5.0]);
        assert_eq!(
            decode(
                Dtype::C64,
                &[1.5f32.to_le_bytes(), 2f32.to_le_bytes()].concat()
            ),
            [1.5, 2.0]
        );
        assert_eq!(decode(Dtype::F64, &0.1f64.to_le_bytes()), [0.1]);
        assert!(Decoder::of(Dtype::F4).is_none());
        assert!(!Decoder::of(Dtype::BOOL).unwrap().float);
    }
}
