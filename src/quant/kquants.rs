//! placeholder: filled by its owner
/// stub
pub fn dequantize_q2_k(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_q3_k(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_q4_k(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_q5_k(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_q6_k(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_q8_k(_src: &[u8], _dst: &mut [f32]) { todo!() }
