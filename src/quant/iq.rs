//! placeholder: filled by its owner
/// stub
pub fn dequantize_iq2_xxs(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_iq2_xs(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_iq3_xxs(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_iq1_s(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_iq4_nl(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_iq3_s(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_iq2_s(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_iq4_xs(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_iq1_m(_src: &[u8], _dst: &mut [f32]) { todo!() }
