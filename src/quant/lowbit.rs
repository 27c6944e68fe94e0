//! placeholder: filled by its owner
/// stub
pub fn dequantize_tq1_0(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_tq2_0(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_mxfp4(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_nvfp4(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_q1_0(_src: &[u8], _dst: &mut [f32]) { todo!() }
/// stub
pub fn dequantize_q2_0(_src: &[u8], _dst: &mut [f32]) { todo!() }
