//! placeholder: filled by its owner
/// stub
pub fn dequantize_q4_0(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_q4_1(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_q5_0(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_q5_1(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_q8_0(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_q8_1(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn quantize_q4_0(_src: &[f32], _dst: &mut [u8]) { todo!() }
/// stub
pub fn quantize_q4_1(_src: &[f32], _dst: &mut [u8]) { todo!() }
/// stub
pub fn quantize_q5_0(_src: &[f32], _dst: &mut [u8]) { todo!() }
/// stub
pub fn quantize_q5_1(_src: &[f32], _dst: &mut [u8]) { todo!() }
/// stub
pub fn quantize_q8_0(_src: &[f32], _dst: &mut [u8]) { todo!() }
/// stub
pub fn quantize_q8_1(_src: &[f32], _dst: &mut [u8]) { todo!() }
